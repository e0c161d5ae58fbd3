"""What one training iteration of each detector family costs under the tiny recipe, side by side.

Trains every detector of the tiny preset (the paper's three and the families of
``retconf.presets.FAMILY_DETECTORS``) one after the other in this process, each for ``--iters``
iterations of its real config (same data, batch, pipeline, autocast and head dtype as
``retconf reproduce``; random initial weights, which do not change the work done), with
``--threads`` torch threads (1: what each of two jobs gets on a 2-core machine). mmengine logs
every iteration's time; the median after ``--skip`` warm-up iterations is the cost. One full
training is that times the iterations of the schedule (8 epochs of the tiny data).

Results: JSON + markdown at ``--out``. Ratios only mean something within one run.

    python benchmarks/family_cost.py --out reports/benchmarks/family_cost
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import write_results  # noqa: E402


def iteration_times(work_dir: Path) -> list[float]:
    """Seconds of each logged training iteration (mmengine's ``time``) in ``work_dir``."""
    rows = [json.loads(line) for f in sorted(work_dir.glob("*/vis_data/scalars.json"))
            for line in f.read_text().splitlines() if line.strip()]
    return [r["time"] for r in rows if "time" in r and "loss" in r]


def measure(name: str, config: str, data_root: str, iters: int, skip: int, batch: int) -> dict:
    """Train ``config`` for ``iters`` iterations; its per-iteration seconds and their median
    after the first ``skip``."""
    from retconf.apis import train

    work = Path(tempfile.mkdtemp(prefix=f"family_cost_{name}_"))
    options = {"model.backbone.init_cfg": None,
               "train_dataloader.dataset.indices": iters * batch, "train_dataloader.batch_size": batch,
               "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
               "train_dataloader.batch_sampler": None,  # full batches: every iteration the same size
               "train_cfg.max_epochs": 1, "train_cfg.val_interval": 2,
               "default_hooks.logger.interval": 1,
               "default_hooks.checkpoint.interval": 2}
    start = time.perf_counter()
    try:
        train(str(ROOT / config), str(work), options, data_root)
        times = iteration_times(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(times) <= skip:
        raise RuntimeError(f"{name}: {len(times)} iterations logged, need more than --skip {skip}")
    return {"config": config, "iterations": len(times), "seconds_per_iter": times,
            "median_s": statistics.median(times[skip:]), "wall_s": round(time.perf_counter() - start, 1)}


def markdown(result: dict) -> str:
    base = result["detectors"].get("retinanet", {}).get("median_s")
    lines = [f"# Training cost per detector family ({result['iters']} iterations each, median after "
             f"{result['skip']}, {result['threads']} thread(s), batch {result['batch']})", "",
             f"{result['machine']}; one process, one detector after another, {result['date']}.", "",
             "| detector | s / iteration (median) | × RetinaNet | one training (8 epochs × 122 it), min |",
             "|---|---|---|---|"]
    for name, r in result["detectors"].items():
        ratio = f"{r['median_s'] / base:.2f}" if base else ""
        lines.append(f"| {name} | {r['median_s']:.3f} | {ratio} | {r['median_s'] * result['schedule_iters'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from retconf.presets import FAMILY_DETECTORS, TINY_DETECTORS

    detectors = {**TINY_DETECTORS, **FAMILY_DETECTORS}
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", nargs="+", default=list(detectors), choices=list(detectors))
    ap.add_argument("--data-root", default=str(ROOT / "data" / "digits-tiny"))
    ap.add_argument("--iters", type=int, default=24)
    ap.add_argument("--skip", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16, help="batch size (default: the tiny configs' 16)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--schedule-iters", type=int, default=8 * 122, help="iterations of one full training")
    ap.add_argument("--out", required=True, help="output path without suffix (.json and .md)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    result = {"iters": args.iters, "skip": args.skip, "threads": args.threads, "batch": args.batch,
              "schedule_iters": args.schedule_iters, "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                         f"torch {torch.__version__}", "detectors": {}}
    for name in args.detectors:
        print(f"{name}: {args.iters} iterations ...", flush=True)
        result["detectors"][name] = measure(name, detectors[name], args.data_root, args.iters, args.skip,
                                            args.batch)
        print(f"{name}: {result['detectors'][name]['median_s']:.3f} s/iter", flush=True)
    write_results(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

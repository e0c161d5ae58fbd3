"""Where the seconds of one tiny-detector training iteration go, and what the CPU levers buy.

Builds the tiny RetinaNet-Conf (or ``--config``) exactly as ``retconf train`` does, then times,
on the same machine in one run:

- the data pipeline (mmdet LoadImageFromFile -> PackDetInputs, in the main process),
- data_preprocessor + forward + loss, backward, optimizer step (with grad clipping),
- the same step under variants: torch threads 1 vs 2, channels-last, bfloat16 autocast.

Results: JSON + markdown at ``--out``. Ratios only mean something within one run.

    python benchmarks/train_profile.py --out reports/benchmarks/train_profile
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(config: str, data_root: str, backbone: str):
    from retconf.runtime import build_runner, finish_cfg, load_config

    cfg = load_config(config, {"model.backbone.init_cfg.checkpoint": backbone,
                               "train_dataloader.num_workers": 0,
                               "train_dataloader.persistent_workers": False}, data_root)
    finish_cfg(cfg, config, "/tmp/retconf_train_profile")
    runner = build_runner(cfg)
    return runner


def time_data(loader, n: int) -> tuple[list, float]:
    it = iter(loader)
    batches = []
    t = time.perf_counter()
    for _ in range(n):
        batches.append(next(it))
    return batches, (time.perf_counter() - t) / n


def time_step(model, optim, batches, threads: int, channels_last: bool, bf16: bool,
              warmup: int = 2, fp32_head: bool = False) -> dict:
    import torch

    from retconf.engine.cpu_speed import keep_fp32

    handles = keep_fp32(model.bbox_head) if fp32_head else []

    torch.set_num_threads(threads)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    parts = {"preprocess": [], "forward+loss": [], "backward": [], "optimizer": []}
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        data = model.data_preprocessor(batch, True)
        if channels_last:
            data["inputs"] = data["inputs"].contiguous(memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = model(**data, mode="loss")
        loss, _ = model.parse_losses(losses)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
        optim.step()
        optim.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if i >= warmup:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[k].append(v)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    for h in handles:
        h.remove()
    out = {k: statistics.median(v) for k, v in parts.items()}
    out["step"] = sum(out.values())
    return out


def parallel_steps(n: int, args) -> list[float]:
    """Median step seconds of ``n`` one-thread processes timing the bf16 channels-last step at once."""
    import subprocess
    import tempfile

    name = "threads=1 bf16 channels_last"
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen([sys.executable, __file__, "--config", args.config, "--data-root", args.data_root,
                                   "--backbone", args.backbone, "--iters", str(args.iters), "--only", name,
                                   "--out", f"{tmp}/p{i}"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]
        if any(p.wait() for p in procs):
            raise RuntimeError(f"a parallel timing process failed (n={n})")
        return [json.loads(Path(f"{tmp}/p{i}.json").read_text())["rows"][name]["step"] for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/retinanet-conf_r18-tiny_fpn_digits.py")
    p.add_argument("--data-root", default="data/digits-tiny")
    p.add_argument("--backbone", default="runs/tiny/pretrain/backbone.pth")
    p.add_argument("--iters", type=int, default=12)
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=None, help="only the variants with this many threads")
    p.add_argument("--only", default=None, help="only this variant (e.g. 'threads=1 bf16 channels_last')")
    p.add_argument("--parallel", type=int, nargs="*", default=[],
                   help="also time N copies of the one-thread bf16 channels-last step running at once, for each N")
    args = p.parse_args(argv)
    import torch

    if args.parallel and args.out:
        parallel = {n: parallel_steps(n, args) for n in args.parallel}

    runner = build(args.config, args.data_root, args.backbone)
    model = runner.model
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches, data_s = time_data(runner.train_dataloader, args.iters)
    rows = {"data pipeline (1 process)": {"step": data_s}}
    variants = [("threads=1", 1, False, False), ("threads=2", 2, False, False),
                ("threads=1 channels_last", 1, True, False), ("threads=2 channels_last", 2, True, False),
                ("threads=1 bf16", 1, False, True), ("threads=2 bf16", 2, False, True),
                ("threads=1 bf16 channels_last", 1, True, True), ("threads=2 bf16 channels_last", 2, True, True),
                ("threads=1 bf16 channels_last fp32 head", 1, True, True, True),
                ("threads=2 bf16 channels_last fp32 head", 2, True, True, True)]
    if args.threads:
        variants = [v for v in variants if v[1] == args.threads]
    if args.only:
        variants = [v for v in variants if v[0] == args.only]
    for name, th, cl, bf, *head in variants:
        rows[name] = time_step(model, optim, batches, th, cl, bf, fp32_head=bool(head and head[0]))
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    print("data", round(data_s, 4))
    result = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "iters": args.iters, "config": args.config, "rows": rows}
    if args.parallel and args.out:
        result["parallel"] = parallel
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(result, indent=1))
        lines = ["# One training iteration of the tiny detector, by part (median seconds)", "",
                 f"{args.config}; batch 16 at 192 px; {result['cpus']} CPUs; torch {torch.__version__}.", "",
                 "| variant | preprocess | forward+loss | backward | optimizer | step |", "|---|---|---|---|---|---|"]
        for name, r in rows.items():
            cells = [f"{r[k]:.4f}" if k in r else "" for k in ("preprocess", "forward+loss", "backward", "optimizer")]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['step']:.4f} |")
        if args.parallel:
            lines += ["", "One-thread bf16 channels-last steps, N processes at once (each its own model and batches):", "",
                      "| N processes | median step s (mean over processes) | steps per second, all processes |",
                      "|---|---|---|"]
            for n, steps in parallel.items():
                mean = sum(steps) / len(steps)
                lines.append(f"| {n} | {mean:.4f} | {n / mean:.2f} |")
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

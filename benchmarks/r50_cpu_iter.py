"""Seconds per training iteration of the paper's R50 1x recipe on CPU, batch 2 (a measurement,
not a test): what a CPU can and cannot do with the COCO recipes.

For RetinaNet, IoU-aware RetinaNet and RetinaNet-Conf (``experiments/*_r50_fpn_1x_coco.py``): the
recipe's own training dataloader on the COCO-shaped embedded dataset (load, 1000×600 keep-ratio
resize, flip, pack, batch 2), then mmengine's ``train_step`` (normalise, forward, losses, SGD
update) with random weights. Reported per model: median wall seconds per step, median process
CPU seconds per step (all threads; less sensitive to other load on the machine), data-loading
seconds per batch, inference seconds per image (batch 1, the recipe's test pipeline) and the
1-minute load average before and after, since a shared machine slows every number.

    python benchmarks/r50_cpu_iter.py --out reports/benchmarks/r50_cpu_iter
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import write_results  # noqa: E402

CONFIGS = {
    "retinanet": "experiments/retinanet_r50_fpn_1x_coco.py",
    "iou_aware": "experiments/iou-aware-retinanet_r50_fpn_1x_coco.py",
    "retinanet_conf": "experiments/retinanet-conf_r50_fpn_1x_coco.py",
}


def measure(name: str, config: str, data_root: Path, batch: int, steps: int, warmup: int, infer: int) -> dict:
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from retconf.runtime import load_config

    register_all_modules()
    import retconf.plugin  # noqa: F401  (registration)

    cfg = load_config(ROOT / config, {"model.backbone.init_cfg": None, "train_dataloader.batch_size": batch,
                                      "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
                                      "test_dataloader.num_workers": 0, "test_dataloader.persistent_workers": False,
                                      "test_dataloader.batch_size": 1}, str(data_root))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches, load_times = [], []
    it = iter(loader)
    for _ in range(warmup + steps):
        t = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        load_times.append(time.perf_counter() - t)
        batches.append(b)
    wall, cpu, shapes = [], [], []
    for i, b in enumerate(batches):
        t, c = time.perf_counter(), time.process_time()
        model.train_step(b, optim)
        if i >= warmup:
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        shapes.append(tuple(b["inputs"][0].shape[-2:]))
    model.eval()
    test_loader = Runner.build_dataloader(cfg.test_dataloader)
    infer_times = []
    with torch.no_grad():
        for i, b in enumerate(test_loader):
            if i >= infer:
                break
            t = time.perf_counter()
            model.test_step(b)
            infer_times.append(time.perf_counter() - t)
    return {"model": name, "config": config, "batch": batch, "steps": steps, "warmup": warmup,
            "s_per_iter": round(statistics.median(wall), 2), "cpu_s_per_iter": round(statistics.median(cpu), 2),
            "load_s_per_batch": round(statistics.median(load_times), 3),
            "infer_s_per_img": round(statistics.median(infer_times), 2) if infer_times else None,
            "input_shapes_hw": sorted(set(shapes))}


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = ["# R50 1x recipe on CPU: seconds per training iteration at batch 2", "",
             f"Machine: {env['machine']}, {env['cpus']} CPUs, torch {env['torch']} ({env['threads']} threads); "
             f"1-minute load average {result['load_before']} before and {result['load_after']} after "
             "(other processes shared the CPUs). Data: the COCO-shaped embedded dataset "
             f"({result['data']}), through the recipe's pipeline (1000x600 keep-ratio resize). "
             "Random weights. Produced by `benchmarks/r50_cpu_iter.py`.", "",
             "| model | s/iter (wall, median) | CPU s/iter (process, median) | data s/batch | inference s/img | "
             "input sizes (h, w) |", "|---|---|---|---|---|---|"]
    for r in result["models"]:
        lines.append(f"| {r['model']} | {r['s_per_iter']} | {r['cpu_s_per_iter']} | {r['load_s_per_batch']} | "
                     f"{r['infer_s_per_img']} | {', '.join(f'{h}x{w}' for h, w in r['input_shapes_hw'])} |")
    if result["models"]:
        first = result["models"][0]
        cpu_days = first["cpu_s_per_iter"] / env["cpus"] * 8 * 90000 / 86400
        lines += ["", f"{first['steps']} timed steps per model after {first['warmup']} warm-up. Wall seconds depend on "
                  "what else runs; process CPU seconds (all threads) much less. The paper's 1x schedule is 90k "
                  "iterations at batch 16 (8 of these steps each): at RetinaNet's CPU seconds spread over all "
                  f"{env['cpus']} cores with nothing else running, that is about {cpu_days:.0f} days for one "
                  "detector, and the comparison needs three. Hence the GPU.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from retconf.data.digits import coco_shaped, generate

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "r50_cpu_iter"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--infer", type=int, default=2, help="images timed at inference")
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--markdown-only", action="store_true", help="rewrite OUT.md from OUT.json, measure nothing")
    args = p.parse_args(argv)
    if args.markdown_only:
        out = Path(args.out)
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return 0
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        data_cfg = coco_shaped(num_train=args.batch * (args.steps + args.warmup), num_val=max(args.infer, 1))
        data = generate(data_cfg, Path(tmp) / "coco")
        rows = [measure(m, CONFIGS[m], data, args.batch, args.steps, args.warmup, args.infer) for m in args.models]
    result = {"environment": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                              "threads": torch.get_num_threads(), "python": platform.python_version()},
              "data": f"coco_shaped(num_train={data_cfg.num_train}, num_val={data_cfg.num_val})",
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 2), "models": rows}
    write_results(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

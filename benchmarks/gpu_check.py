"""The GPU check behind ``scripts/gpu_check.sh`` (a measurement, not a test).

Two stages, each writing its part of ``OUT/gpu_check.json`` as soon as it ends (a stage that
fails or runs out of time records why, and the next one still runs):

``r50``  The paper's R50 1x recipe at batch 16 on synthetic 1000×600 images, for mmdet's own
         ``retinanet_r50_fpn_1x_coco`` and retconf's RetinaNet, IoU-aware RetinaNet and
         RetinaNet-Conf side by side on the same device: median seconds per training step
         (mmengine ``train_step``: preprocessing, forward, losses, SGD update), the step-time
         ratio to mmdet's RetinaNet, peak GPU memory, and inference images/s (batch 1, as
         ``retconf test``). Random weights: speed does not depend on them.
``tiny`` The tiny preset's three detectors for several seeds, as ``retconf reproduce --seeds N``
         trains them (same data, shared pretrained backbone, ``randomness.seed = s``), the
         seeds run in parallel processes: AP per seed and seconds per iteration.

``--dry-run`` runs both stages on CPU at toy sizes (a few images, one epoch, small inputs) so
the whole path is exercised where no GPU is available; its numbers only show that it runs.

    python benchmarks/gpu_check.py --out reports/benchmarks [--stages r50 tiny] [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
R50_MODELS = {
    "mmdet retinanet": "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py",
    "retinanet": "experiments/retinanet_r50_fpn_1x_coco.py",
    "iou_aware": "experiments/iou-aware-retinanet_r50_fpn_1x_coco.py",
    "retinanet_conf": "experiments/retinanet-conf_r50_fpn_1x_coco.py",
}
TINY_MODELS = {
    "retinanet": "experiments/retinanet_r18-tiny_fpn_digits.py",
    "iou_aware": "experiments/iou-aware-retinanet_r18-tiny_fpn_digits.py",
    "retinanet_conf": "experiments/retinanet-conf_r18-tiny_fpn_digits.py",
}
# --dry-run: toy sizes that still go through every step
DRY_TINY_OPTIONS = {"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1, "param_scheduler.0.end": 2,
                    "param_scheduler.1.end": 1, "param_scheduler.1.T_max": 1,
                    "train_dataloader.batch_size": 4, "default_hooks.logger.interval": 1}


def environment() -> dict:
    """Versions and device of this run."""
    import mmcv
    import mmdet
    import mmengine
    import numpy as np
    import torch

    ext = sys.modules.get("mmcv._ext")
    if ext is None:
        try:
            import mmcv._ext as ext  # noqa: F811
        except ImportError:
            ext = None
    ops = "none" if ext is None else ("retconf fallback (pure torch)" if getattr(ext, "FALLBACK", False)
                                      else "compiled")
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "numpy": np.__version__, "mmcv": mmcv.__version__, "mmcv_ops": ops, "mmdet": mmdet.__version__,
            "mmengine": mmengine.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}


def _config_path(spec: str) -> str:
    if spec.startswith("mmdet::"):
        import mmdet

        return str(Path(mmdet.__file__).parent / ".mim" / "configs" / spec[len("mmdet::"):])
    return str(ROOT / spec)


def _synthetic_batch(n: int, width: int, height: int, num_classes: int, seed: int) -> dict:
    """``n`` random uint8 images [3, height, width] with 3-10 random boxes each, as a dataloader
    would hand them to ``train_step``."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g))
        k = int(torch.randint(3, 11, (1,), generator=g))
        wh = torch.rand(k, 2, generator=g) * torch.tensor([width / 2, height / 2]) + 10
        xy = torch.rand(k, 2, generator=g) * (torch.tensor([width, height]) - wh)
        sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                             pad_shape=(height, width), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.randint(0, num_classes, (k,), generator=g))
        samples.append(sample)
    return {"inputs": inputs, "data_samples": samples}


def time_r50(name: str, spec: str, batch: int, steps: int, warmup: int, width: int, height: int,
             infer_images: int) -> dict:
    """Training-step and inference timing of one config on synthetic data (see module docstring)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    register_all_modules()
    from mmengine.logging import MMLogger

    import retconf.plugin  # noqa: F401  (registration)

    MMLogger.get_current_instance().setLevel("WARNING")  # init_weights logs every parameter

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    cfg = Config.fromfile(_config_path(spec))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = cfg.model.bbox_head.num_classes
    batches = [_synthetic_batch(batch, width, height, num_classes, seed) for seed in range(2)]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        sync()
        t = time.perf_counter()
        log_vars = model.train_step(batches[i % 2], optim)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    loss = float(log_vars["loss"])

    model.eval()
    one = _synthetic_batch(1, width, height, num_classes, 7)
    with torch.no_grad():
        for _ in range(2):
            model.test_step(one)
        sync()
        t = time.perf_counter()
        for _ in range(infer_images):
            model.test_step(one)
        sync()
        infer = time.perf_counter() - t
    del model, optim
    if cuda:
        torch.cuda.empty_cache()
    return {"model": name, "config": spec, "batch": batch, "image": f"{width}x{height}", "steps": steps,
            "warmup": warmup, "s_per_iter": statistics.median(times), "s_per_iter_min": min(times),
            "peak_mem_gib": None if peak is None else round(peak, 2), "last_loss": round(loss, 4),
            "infer_img_per_s": round(infer_images / infer, 2), "infer_images": infer_images}


def stage_r50(args: argparse.Namespace, record: dict, save) -> None:
    rows = []
    record["r50"] = {"rows": rows, "status": "running"}
    stop = time.time() + args.r50_share * (args.deadline - time.time())
    for name, spec in R50_MODELS.items():
        if time.time() > stop:
            record["r50"]["status"] = f"stopped before {name}: out of time"
            break
        try:
            rows.append(time_r50(name, spec, args.r50_batch, args.r50_steps, args.r50_warmup,
                                 args.r50_width, args.r50_height, args.r50_infer))
        except Exception as e:  # noqa: BLE001 - record and go on to the next model
            rows.append({"model": name, "config": spec, "error": f"{type(e).__name__}: {e}"[:500]})
        print(json.dumps(rows[-1]), flush=True)
        save()
    base = next((r["s_per_iter"] for r in rows if r["model"] == "mmdet retinanet" and "s_per_iter" in r), None)
    for r in rows:
        if base and "s_per_iter" in r:
            r["step_time_ratio"] = round(r["s_per_iter"] / base, 3)
    if record["r50"]["status"] == "running":
        record["r50"]["status"] = "done"
    save()


def _scalars(work_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(work_dir.glob("*/vis_data/scalars.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def stage_tiny(args: argparse.Namespace, record: dict, save) -> None:
    from retconf.data.digits import DigitsConfig, generate
    from retconf.pretrain import PretrainConfig, pretrain_backbone
    from retconf.runtime import load_config

    work = Path(args.work) / "tiny"
    info: dict[str, Any] = {"status": "running", "seeds": list(range(args.seeds))}
    record["tiny"] = info
    data_cfg = DigitsConfig(num_train=32, num_val=16) if args.dry_run else DigitsConfig()
    t = time.time()
    data = generate(data_cfg, work / "data", overwrite=True)
    info["data_seconds"] = round(time.time() - t, 1)
    backbone = Path(args.backbone) if args.backbone else work / "pretrain" / "backbone.pth"
    t = time.time()
    if args.backbone:
        info["backbone"] = f"carried: {args.backbone}"
    else:
        pcfg = PretrainConfig(iters=5, batch_size=16, eval_crops=32) if args.dry_run else PretrainConfig()
        meta = pretrain_backbone(load_config(ROOT / TINY_MODELS["retinanet"]), backbone, pcfg, progress=False)
        info["backbone"] = f"pretrained here (crop accuracy {meta['accuracy']:.3f})"
    info["pretrain_seconds"] = round(time.time() - t, 1)
    save()
    options = {"model.backbone.init_cfg.checkpoint": str(backbone), **(DRY_TINY_OPTIONS if args.dry_run else {})}
    procs = {}
    t0 = time.time()
    for seed in range(args.seeds):
        cmds = []
        for name, config in TINY_MODELS.items():
            opts = {**options, "randomness.seed": seed}
            cmds.append(" ".join([sys.executable, "-m", "retconf.cli", "train", str(ROOT / config), "--work-dir",
                                  str(work / f"seed_{seed}" / name), "--data-root", str(data), "--cfg-options",
                                  *[f"{k}={v}" for k, v in opts.items()]]))
        log = open(work / f"seed_{seed}.log", "w")
        # a session of its own, so that running out of time ends the training with its shell
        procs[seed] = (subprocess.Popen(" && ".join(cmds), shell=True, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=ROOT, start_new_session=True), log)
    timed_out = False
    for p, log in procs.values():
        try:
            p.wait(timeout=max(1.0, args.deadline - time.time()))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
    info["train_seconds_all_seeds_parallel"] = round(time.time() - t0, 1)
    rows = []
    for seed in range(args.seeds):
        for name in TINY_MODELS:
            wd = work / f"seed_{seed}" / name
            metrics = json.loads((wd / "metrics.json").read_text()) if (wd / "metrics.json").is_file() else {}
            iter_times = [r["time"] for r in _scalars(wd) if "time" in r and "loss" in r]
            m = metrics.get("metrics", {})
            rows.append({"seed": seed, "model": name, "finished": bool(metrics), "AP": m.get("coco/bbox_mAP"), "AP50": m.get("coco/bbox_mAP_50"),
                         "AP75": m.get("coco/bbox_mAP_75"), "epoch": metrics.get("epoch"), "iter": metrics.get("iter"),
                         "s_per_iter": round(statistics.median(iter_times), 4) if iter_times else None})
    info["rows"] = rows
    # mmdet's CocoMetric reports no metrics at all when a model detects nothing: finished, AP "—"
    info["status"] = "out of time (trainings killed)" if timed_out else (
        "done" if all(r["finished"] for r in rows) else "some trainings failed (see seed_*.log)")
    if info["status"] != "done":
        tails = {}
        for seed in range(args.seeds):
            text = (work / f"seed_{seed}.log").read_text(errors="replace")
            tails[seed] = text[-1500:]
        info["log_tails"] = tails
    save()


def markdown(record: dict) -> str:
    env = record["environment"]
    lines = [f"# GPU check{' (CPU dry run: toy sizes, numbers only show that it runs)' if record['dry_run'] else ''}", "",
             f"Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}), numpy {env['numpy']}, "
             f"mmcv {env['mmcv']} with ops: {env['mmcv_ops']}, mmdet {env['mmdet']}, mmengine {env['mmengine']}, "
             f"Python {env['python']}, {env['cpus']} CPUs (1-min load at start {env['load_average_1min']}). "
             f"Produced by `benchmarks/gpu_check.py` ({record['finished']}).", ""]
    if record.get("mmcv_build"):
        lines += [f"mmcv build: {record['mmcv_build']}", ""]
    r50 = record.get("r50")
    if r50:
        rows = r50["rows"]
        first = next((r for r in rows if "s_per_iter" in r), {})
        lines += [f"## R50 1x recipe, batch {first.get('batch')} on synthetic {first.get('image')} images ({r50['status']})", "",
                  "| model | s/iter (median) | ratio to mmdet RetinaNet | peak GPU memory (GiB) | inference img/s (batch 1) |",
                  "|---|---|---|---|---|"]
        for r in rows:
            if "s_per_iter" not in r:
                lines.append(f"| {r['model']} | error: {r.get('error', '?')[:120]} | | | |")
            else:
                lines.append(f"| {r['model']} | {r['s_per_iter']:.4f} | {r.get('step_time_ratio', '')} | "
                             f"{r['peak_mem_gib'] if r['peak_mem_gib'] is not None else 'n/a'} | {r['infer_img_per_s']} |")
        lines.append("")
    tiny = record.get("tiny")
    if tiny:
        lines += [f"## Tiny preset, {len(tiny['seeds'])} seeds ({tiny['status']})", "",
                  f"Data {tiny.get('data_seconds')} s; backbone: {tiny.get('backbone')} ({tiny.get('pretrain_seconds')} s); "
                  f"trainings of all seeds in parallel: {tiny.get('train_seconds_all_seeds_parallel')} s.", "",
                  "| seed | model | AP | AP50 | AP75 | s/iter (median) |", "|---|---|---|---|---|---|"]
        if any(r.get("finished") and r["AP"] is None for r in tiny.get("rows", [])):
            lines[-2:-2] = ["AP \"—\" on a finished training: no detection above score_thr (mmdet then reports "
                            "no metrics).", ""]
        for r in tiny.get("rows", []):
            fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {r['seed']} | {r['model']} | {fmt(r['AP'])} | {fmt(r['AP50'])} | {fmt(r['AP75'])} | "
                         f"{r['s_per_iter'] if r['s_per_iter'] is not None else '—'} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"), help="folder for gpu_check[_dryrun].{json,md}")
    p.add_argument("--work", default="/tmp/retconf-gpu-check", help="scratch folder (data, work dirs)")
    p.add_argument("--stages", nargs="+", default=["r50", "tiny"], choices=["r50", "tiny"])
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: exercise every step")
    p.add_argument("--budget", type=float, default=420.0, help="seconds for all stages (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--r50-share", type=float, default=0.4,
                   help="share of the remaining budget after which r50 starts no further model (default %(default)s)")
    p.add_argument("--backbone", help="pretrained tiny backbone to reuse (default: pretrain here)")
    p.add_argument("--tag", default="", help="suffix of the output names, e.g. _compiled")
    p.add_argument("--extra", default="{}", help="JSON merged into the record (e.g. the mmcv build outcome)")
    args = p.parse_args(argv)
    args.deadline = time.time() + args.budget
    if args.dry_run:
        args.r50_batch, args.r50_steps, args.r50_warmup, args.r50_infer = 1, 1, 0, 1
        args.r50_width, args.r50_height = 256, 160
    else:
        args.r50_batch, args.r50_steps, args.r50_warmup, args.r50_infer = 16, 10, 3, 20
        args.r50_width, args.r50_height = 1000, 600
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    record: dict[str, Any] = {"dry_run": args.dry_run, "environment": environment(), **json.loads(args.extra)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_check{'_dryrun' if args.dry_run else ''}{args.tag}"

    def save() -> None:
        record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
        (out / f"{stem}.md").write_text(markdown(record))

    Path(args.work).mkdir(parents=True, exist_ok=True)
    for stage in args.stages:
        t = time.time()
        try:
            (stage_r50 if stage == "r50" else stage_tiny)(args, record, save)
        except Exception as e:  # noqa: BLE001 - a failed stage is recorded, the next one runs
            record.setdefault(stage, {})["status"] = f"failed: {type(e).__name__}: {e}"[:800]
        record.setdefault(stage, {})["seconds"] = round(time.time() - t, 1)
        save()
        print(f"[gpu_check] {stage}: {record[stage]['status']} ({record[stage]['seconds']} s)", flush=True)
    print((out / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step and inference time of RetinaNet-Conf and IoU-aware RetinaNet relative to plain
RetinaNet, measured side by side in one process so machine noise cancels.

The three models are built from configs (default: the tiny digits presets), get the same
weights wherever they share parameters, and see the same synthetic batch. Steps are
interleaved (A, B, C, A, B, C, ...) and the median per model is reported, with the ratio to
RetinaNet. Writes JSON and a markdown table.

    python benchmarks/head_overhead.py --steps 20 --out reports/benchmarks/head_overhead
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = {
    "retinanet": "experiments/retinanet_r18-tiny_fpn_digits.py",
    "iou_aware": "experiments/iou-aware-retinanet_r18-tiny_fpn_digits.py",
    "retinanet_conf": "experiments/retinanet-conf_r18-tiny_fpn_digits.py",
}


def synthetic_batch(size: tuple[int, int], batch: int, num_classes: int, seed: int = 0) -> dict:
    """A data_preprocessor input: random images with 3 random boxes each."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(seed)
    h, w = size
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = (0.1 + torch.rand(3, 2, generator=g) * 0.3) * torch.tensor([w, h])
        inst = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                            labels=torch.randint(0, num_classes, (3,), generator=g))
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
        s.gt_instances = inst
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def build(config: str, device: str):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import retconf  # noqa: F401

    register_all_modules()
    cfg = Config.fromfile(str(ROOT / config))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device), cfg


def measure(configs: dict[str, str], steps: int, warmup: int, batch: int,
            size: tuple[int, int], device: str) -> dict:
    models, optims = {}, {}
    ref_state = None
    for name, config in configs.items():
        model, cfg = build(config, device)
        if ref_state is None:
            ref_state = model.state_dict()
        else:  # share every common weight so only the head differs
            model.load_state_dict({k: v for k, v in ref_state.items() if k in model.state_dict()}, strict=False)
        models[name] = model
        optims[name] = torch.optim.SGD(model.parameters(), lr=1e-4)
        num_classes = cfg.model.bbox_head.num_classes
    data = synthetic_batch(size, batch, num_classes)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = {n: {"train": [], "infer": []} for n in models}
    peak = {}
    for phase in ("train", "infer"):
        for i in range(warmup + steps):
            for name, model in models.items():
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                batch_in = model.data_preprocessor(data, training=phase == "train")
                sync()
                t = time.perf_counter()
                if phase == "train":
                    model.train()
                    losses = model(**batch_in, mode="loss")
                    loss = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                               for k, v in losses.items() if "loss" in k)
                    optims[name].zero_grad()
                    loss.backward()
                    optims[name].step()
                else:
                    model.eval()
                    with torch.no_grad():
                        model(**batch_in, mode="predict")
                sync()
                if i >= warmup:
                    times[name][phase].append(time.perf_counter() - t)
                if device.startswith("cuda"):
                    peak.setdefault(name, {})[phase] = torch.cuda.max_memory_allocated() / 2**20
    base = {p: statistics.median(times["retinanet"][p]) for p in ("train", "infer")}
    rows = {}
    for name in models:
        med = {p: statistics.median(times[name][p]) for p in ("train", "infer")}
        rows[name] = {
            "train_s": round(med["train"], 4), "infer_s": round(med["infer"], 4),
            "train_ratio": round(med["train"] / base["train"], 4),
            "infer_ratio": round(med["infer"] / base["infer"], 4),
            "params": sum(p.numel() for p in models[name].parameters()),
            **({"peak_mib": peak[name]} if name in peak else {}),
        }
    return rows


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = [f"# Head overhead ({m['device_name']}, batch {m['batch']}, {m['size'][0]}x{m['size'][1]}, "
             f"median of {m['steps']} interleaved steps)", "",
             "| model | train s/step | x RetinaNet | inference s/batch | x RetinaNet | params |",
             "|---|---|---|---|---|---|"]
    for name, r in result["models"].items():
        lines.append(f"| {name} | {r['train_s']:.4f} | {r['train_ratio']:.3f} | {r['infer_s']:.4f} | "
                     f"{r['infer_ratio']:.3f} | {r['params']:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=[192, 192], metavar=("H", "W"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", nargs=3, metavar=("RETINANET", "IOU_AWARE", "CONF"),
                   help="configs to compare instead of the tiny presets")
    p.add_argument("--out", default=None, help="output prefix for .json and .md (default: print only)")
    args = p.parse_args(argv)
    configs = dict(zip(DEFAULT_CONFIGS, args.config)) if args.config else DEFAULT_CONFIGS
    rows = measure(configs, args.steps, args.warmup, args.batch, tuple(args.size), args.device)
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    result = {"meta": {"configs": configs, "steps": args.steps, "batch": args.batch, "size": args.size,
                       "device": args.device, "device_name": device_name, "torch": torch.__version__,
                       "python": sys.version.split()[0]}, "models": rows}
    text = markdown(result)
    print(text)
    if args.out:
        from retconf.io import atomic_write_text

        atomic_write_text(f"{args.out}.json", json.dumps(result, indent=1))
        atomic_write_text(f"{args.out}.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

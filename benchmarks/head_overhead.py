"""Training-step and inference time of RetinaNet-Conf and IoU-aware RetinaNet relative to plain
RetinaNet, measured side by side in one process so machine noise cancels.

The three models are built from configs (default: the tiny digits presets), get the same
weights wherever they share parameters, and see the same synthetic batch. Steps are
interleaved (A, B, C, A, B, C, ...) and the median per model is reported, with the ratio to
RetinaNet. Writes JSON and a markdown table.

    python benchmarks/head_overhead.py --steps 30 --data-root data/digits-tiny \
        --checkpoints runs/tiny/{retinanet,iou_aware,retinanet_conf}/epoch_8.pth \
        --out reports/benchmarks/head_overhead_cpu
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


def digits_batch(data_root: str, batch: int) -> dict:
    """The first ``batch`` val images of an embedded digits dataset with their ground truth."""
    import cv2
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    root = Path(data_root)
    coco = json.loads((root / "annotations" / "instances_val.json").read_text())
    inputs, samples = [], []
    for img in coco["images"][:batch]:
        bgr = cv2.imread(str(root / "val" / img["file_name"]))  # as mmdet's LoadImageFromFile
        inputs.append(torch.from_numpy(bgr).permute(2, 0, 1).contiguous())
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                               a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=torch.float32)
        h, w = bgr.shape[:2]
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
        s.gt_instances = InstanceData(bboxes=boxes.reshape(-1, 4),
                                      labels=torch.tensor([a["category_id"] - 1 for a in anns]))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def build(config: str, device: str, fusion_order: str | None = None):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import retconf.plugin  # noqa: F401

    register_all_modules()
    cfg = Config.fromfile(str(ROOT / config))
    cfg.model.backbone.init_cfg = None
    if fusion_order and "fusion" in cfg.model.bbox_head:
        cfg.model.bbox_head.fusion.order = fusion_order
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device), cfg


def measure(configs: dict[str, str], steps: int, warmup: int, batch: int,
            size: tuple[int, int], device: str, checkpoints: dict[str, str] | None = None,
            data_root: str | None = None, fusion_order: str | None = None) -> dict:
    """Median step times per model. Without checkpoints every model gets RetinaNet's random
    weights wherever they share parameters; with checkpoints each loads its own trained weights
    (inference time then reflects real candidate counts, not an untrained head's)."""
    from retconf.checkpoint import load_checkpoint_file

    models, optims = {}, {}
    ref_state = None
    for name, config in configs.items():
        model, cfg = build(config, device, fusion_order)
        if checkpoints:
            model.load_state_dict(load_checkpoint_file(checkpoints[name])["state_dict"])
        elif ref_state is None:
            ref_state = model.state_dict()
        else:  # share every common weight so only the head differs
            model.load_state_dict({k: v for k, v in ref_state.items() if k in model.state_dict()}, strict=False)
        models[name] = model
        optims[name] = torch.optim.SGD(model.parameters(), lr=1e-4)
        num_classes = cfg.model.bbox_head.num_classes
    data = digits_batch(data_root, batch) if data_root else synthetic_batch(size, batch, num_classes)
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
                else:  # model.predict split in its three parts
                    model.eval()
                    with torch.no_grad():
                        feats = model.extract_feat(batch_in["inputs"])
                        sync()
                        t1 = time.perf_counter()
                        outs = model.bbox_head(feats)
                        sync()
                        t2 = time.perf_counter()
                        model.bbox_head.predict_by_feat(
                            *outs, batch_img_metas=[d.metainfo for d in batch_in["data_samples"]], rescale=True)
                sync()
                end = time.perf_counter()
                if i >= warmup:
                    times[name][phase].append(end - t)
                    if phase == "infer":
                        for part, v in (("feat", t1 - t), ("head", t2 - t1), ("post", end - t2)):
                            times[name].setdefault(part, []).append(v)
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
            **{f"infer_{part}_s": round(statistics.median(times[name][part]), 4) for part in ("feat", "head", "post")},
            "params": sum(p.numel() for p in models[name].parameters()),
            **({"peak_mib": peak[name]} if name in peak else {}),
        }
    return rows


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = [f"# Head overhead ({m['device_name']}, batch {m['batch']}, {m['size'][0]}x{m['size'][1]}, "
             f"median of {m['steps']} interleaved steps)", "",
             f"Weights: {'trained checkpoints' if m['checkpoints'] else 'random (shared where common)'}; "
             f"images: {m['data_root'] or 'synthetic'}; fusion order: "
             f"{m['fusion_order'] or 'as configured'}.", "",
             "| model | train s/step | x RetinaNet | inference s/batch | x RetinaNet | params |",
             "|---|---|---|---|---|---|"]
    for name, r in result["models"].items():
        lines.append(f"| {name} | {r['train_s']:.4f} | {r['train_ratio']:.3f} | {r['infer_s']:.4f} | "
                     f"{r['infer_ratio']:.3f} | {r['params']:,} |")
    lines += ["", "Inference by part (median s per batch): backbone + neck, head convolutions, post-processing "
              "(score, top-k, decode, NMS):", "",
              "| model | backbone + neck | head | post-processing |", "|---|---|---|---|"]
    for name, r in result["models"].items():
        if "infer_feat_s" in r:
            lines.append(f"| {name} | {r['infer_feat_s']:.4f} | {r['infer_head_s']:.4f} | {r['infer_post_s']:.4f} |")
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
    p.add_argument("--checkpoints", nargs=3, metavar=("RETINANET", "IOU_AWARE", "CONF"),
                   help="trained checkpoints of the three models (e.g. runs/tiny/*/epoch_8.pth)")
    p.add_argument("--data-root", help="embedded digits dataset: use its first val images "
                   "instead of a synthetic batch (size then comes from the images)")
    p.add_argument("--fusion-order", choices=["before_topk", "after_topk"],
                   help="override the quality heads' fusion order (default: the configs')")
    p.add_argument("--out", default=None, help="output prefix for .json and .md (default: print only)")
    args = p.parse_args(argv)
    configs = dict(zip(DEFAULT_CONFIGS, args.config)) if args.config else DEFAULT_CONFIGS
    checkpoints = dict(zip(DEFAULT_CONFIGS, args.checkpoints)) if args.checkpoints else None
    rows = measure(configs, args.steps, args.warmup, args.batch, tuple(args.size), args.device,
                   checkpoints, args.data_root, args.fusion_order)
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    result = {"meta": {"configs": configs, "checkpoints": checkpoints, "data_root": args.data_root,
                       "fusion_order": args.fusion_order, "steps": args.steps, "batch": args.batch, "size": args.size,
                       "device": args.device, "device_name": device_name, "torch": torch.__version__,
                       "python": sys.version.split()[0]}, "models": rows}
    text = markdown(result)
    print(text)
    if args.out:
        from retconf.io import write_json_and_markdown

        write_json_and_markdown(args.out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

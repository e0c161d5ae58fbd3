"""A 10-α re-scoring sweep against its floor: the same per-image NMS on the same boxes with no
selection or pandas work around it (the part any exact re-scoring must pay).

    python benchmarks/rescore_floor.py --dump runs/tiny/seed_0/dumps/retinanet_conf \\
        --out reports/benchmarks/rescore_floor
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.studies.tables import ALPHAS  # noqa: E402


def nms_only(frame, nms_iou: float, max_per_img: int) -> float:
    """Seconds of mmcv batched_nms per image on tensors built beforehand (the floor)."""
    from mmcv.ops import batched_nms

    from analysis.scoring.rescore import nms_inputs

    boxes, scores, labels, starts, ends = nms_inputs(frame)
    cfg = dict(type="nms", iou_threshold=nms_iou)
    t = time.perf_counter()
    for a, b in zip(starts, ends):
        batched_nms(boxes[a:b], scores[a:b], labels[a:b], cfg)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump", required=True)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch

    from analysis.inputs.io import load_dump
    from analysis.scoring.fusion import Fusion, fuse_arrays
    from analysis.scoring.rescore import inference_kwargs, nms_per_image, select_candidates

    dump = load_dump(args.dump)
    cands, kw = dump.candidates, inference_kwargs(dump.meta)
    fuse_arrays(np.array([0.5], np.float32), np.array([0.5], np.float32), "pow", 0.4, 0.5)  # warm up
    sel_s = nms_s = floor_s = 0.0
    for a in ALPHAS:
        t = time.perf_counter()
        frame = select_candidates(cands, Fusion("pow", a, 0.5), kw["score_thr"], kw["nms_pre"], kw["min_bbox_size"])
        t1 = time.perf_counter()
        nms_per_image(frame, kw["nms_iou"], kw["max_per_img"])
        t2 = time.perf_counter()
        sel_s += t1 - t
        nms_s += t2 - t1
        floor_s += nms_only(frame, kw["nms_iou"], kw["max_per_img"])
    total = sel_s + nms_s
    result = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "dump": args.dump, "images": int(dump.meta["num_images"]), "candidates": len(cands),
              "alphas": ALPHAS, "selection_s": round(sel_s, 2), "nms_s": round(nms_s, 2),
              "sweep_s": round(total, 2), "floor_nms_only_s": round(floor_s, 2),
              "sweep_over_floor": round(total / floor_s, 2)}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(result, indent=1))
        Path(args.out + ".md").write_text(
            "# 10-α re-scoring sweep against its floor\n\n"
            f"Dump `{args.dump}`: {result['images']} images, {result['candidates']:,} candidates; "
            f"{result['cpus']} CPUs, torch {result['torch_threads']} threads.\n\n"
            "| part | seconds (10 α) |\n|---|---|\n"
            f"| selection (fuse, threshold, top-k per level; numpy) | {result['selection_s']} |\n"
            f"| NMS per image incl. building its inputs and outputs | {result['nms_s']} |\n"
            f"| **sweep** | **{result['sweep_s']}** |\n"
            f"| floor: the same NMS calls alone | {result['floor_nms_only_s']} |\n\n"
            f"Sweep / floor: {result['sweep_over_floor']}×.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

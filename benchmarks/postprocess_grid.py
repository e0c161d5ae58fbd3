"""A full post-processing grid replayed on one dump against its floor: every NMS IoU threshold ×
NMS kind (hard, linear and Gaussian Soft-NMS) × ranking of the dump's fusion grid, with
:func:`analysis.studies.postprocess.sweep`; the floor is the same mmcv ``batched_nms`` calls, per image,
on tensors built beforehand (what a replay that gives mmcv all of each image's boxes pays; hard NMS
with a per-image cap now runs on the prefix of the boxes that holds its survivors,
:func:`analysis.geometry.nms.capped_nms`, and can take less). The evaluation of every cell (COCO
AP, oLRP, best score thresholds) is timed apart.

    python benchmarks/postprocess_grid.py --dump runs/tiny/seed_0/dumps/retinanet_conf \\
        --out reports/benchmarks/postprocess_grid
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import write_results  # noqa: E402


def nms_floor(frame, nms_cfg: dict, max_per_img) -> float:
    """Seconds of mmcv ``batched_nms`` per image (and the cap) on tensors built beforehand."""
    from mmcv.ops import batched_nms

    from analysis.scoring.rescore import nms_inputs

    if frame.empty:
        return 0.0
    boxes, scores, labels, starts, ends = nms_inputs(frame)
    t = time.perf_counter()
    for a, b in zip(starts, ends):
        _, keep = batched_nms(boxes[a:b], scores[a:b], labels[a:b], dict(nms_cfg))
        keep[:max_per_img]
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--no-eval", action="store_true", help="time the replay only")
    p.add_argument("--thresholds", type=float, nargs="+", default=None, help="NMS IoU thresholds (default: 5)")
    p.add_argument("--rankings", type=int, default=None,
                   help="only the first N rankings of the dump's fusion grid (the deployed one first; default: all)")
    p.add_argument("--note", default="", help="a sentence on the machine's load, put in the markdown")
    args = p.parse_args(argv)
    import torch

    from analysis.inputs.io import load_dump
    from analysis.measures.coco import coco_ground_truth
    from analysis.measures.quality import ann_path, dump_ground_truth
    from analysis.scoring.rescore import inference_kwargs, select_candidates
    from analysis.studies.postprocess import NMS_THRESHOLDS, detection_metrics, grid_rules, sweep
    from retconf.fusion import Fusion

    dump = load_dump(args.dump)
    base = inference_kwargs(dump.meta)
    fusions = [Fusion.of(f) for f in dump.meta["candidate_rule"]["fusions"]][:args.rankings]
    thresholds = NMS_THRESHOLDS if args.thresholds is None else tuple(args.thresholds)
    rules = grid_rules(thresholds)
    gt, coco = dump_ground_truth(dump), coco_ground_truth(ann_path(dump.meta), dump.meta["classes"],
                                                          dump.meta.get("cat_ids"))

    # replay, floor and evaluation cell by cell, interleaved, so that all three see the same load
    n_cells, sweep_s, floor_s, kinds, frames = 0, 0.0, 0.0, {}, {}
    eval_s = None if args.no_eval else 0.0
    grid = sweep(dump.candidates, fusions, rules, base)
    while True:
        t = time.perf_counter()
        cell = next(grid, None)
        if cell is None:
            break
        sweep_s += time.perf_counter() - t  # selection (first cell of a ranking) + NMS of this cell
        n_cells += 1
        fusion, rule, dets = cell
        if fusion not in frames:
            frames = {fusion: select_candidates(dump.candidates, fusion, base["score_thr"], base["nms_pre"],
                                                base["min_bbox_size"], base["selection"])}
        s = nms_floor(frames[fusion], rule.nms_cfg(), rule.max_per_img)
        floor_s += s
        kinds[rule.kind] = kinds.get(rule.kind, 0.0) + s
        if eval_s is not None:
            t = time.perf_counter()
            detection_metrics(dets, coco, gt, len(dump.images))
            eval_s += time.perf_counter() - t

    result = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_1min": round(os.getloadavg()[0], 2), "dump": args.dump, "images": int(dump.meta["num_images"]),
              "candidates": len(dump.candidates), "nms_thresholds": list(thresholds),
              "nms_kinds": sorted({r.kind for r in rules}), "fusions": len(fusions), "cells": n_cells,
              "sweep_s": round(sweep_s, 1), "floor_nms_only_s": round(floor_s, 1),
              "floor_by_kind_s": {k: round(v, 1) for k, v in kinds.items()},
              "sweep_over_floor": round(sweep_s / floor_s, 2) if floor_s else None,
              "eval_s": None if eval_s is None else round(eval_s, 1), "note": args.note}
    total = sweep_s + (eval_s or 0.0)
    md = ("# Post-processing grid replayed on one dump, against its floor\n\n"
          f"Dump `{args.dump}`: {result['images']} images, {result['candidates']:,} candidates; "
          f"{result['cpus']} CPUs, torch {result['torch_threads']} threads, load average {result['load_1min']} "
          "when it finished.\n\n"
          + (f"{args.note}\n\n" if args.note else "")
          + f"Grid: {len(thresholds)} NMS IoU thresholds ({', '.join(f'{t:g}' for t in thresholds)}) × "
          f"{len(result['nms_kinds'])} NMS kinds ({', '.join(result['nms_kinds'])}) × {len(fusions)} rankings "
          f"({'the first ' + str(len(fusions)) + ' of ' if args.rankings else ''}the dump's fusion grid) = {n_cells} cells (Gaussian Soft-NMS ignores the IoU threshold; its cells "
          "are run anyway).\n\n"
          "| part | seconds |\n|---|---|\n"
          f"| replay: selection once per ranking + NMS per cell (`analysis.studies.postprocess.sweep`) | {result['sweep_s']} |\n"
          f"| floor: the same `batched_nms` calls alone, per image (timed right after each cell) | {result['floor_nms_only_s']} |\n"
          + "".join(f"| — of which {k} | {v} |\n" for k, v in result["floor_by_kind_s"].items())
          + (f"| evaluation of every cell (COCO AP, oLRP, best F1/LRP threshold) | {result['eval_s']} |\n"
             if eval_s is not None else "")
          + f"| **grid, replay + evaluation** | **{total:.1f}** ({total / 60:.1f} min) |\n\n"
          f"Replay / floor: {result['sweep_over_floor']}×.\n")
    if args.out:
        write_results(args.out, result, md)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Speed of the beyond-AP metrics (calibration, LRP, TIDE, AP(IoU), reliability, per level) on a
synthetic COCO-scale input: N images with 100 detections each after NMS and C candidates each
before, 80 classes, about 7 ground truths per image.

Every figure is measured in this run; results go to JSON and a markdown summary.

    python benchmarks/quality_metrics_speed.py --images 5000 --dets 100 --cands 5000 \\
        --out reports/benchmarks/quality_metrics_speed
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.geometry.matching import ground_truth  # noqa: E402
from analysis.measures import quality  # noqa: E402
from analysis.measures.tide import tide_errors  # noqa: E402

FUSION = {"mode": "pow", "alpha": 0.4, "thr": 0.5}


def synthetic(n_images: int, dets: int, cands: int, ann_file: Path, n_classes: int = 80,
              seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Writes a COCO annotation file; returns (detections, candidates). Detections are jittered
    copies of the image's ground truths (half) or random boxes, a fifth with a random label; the
    candidates hold the detections plus random boxes (``cands`` per image)."""
    rng = np.random.default_rng(seed)
    n_gt = rng.integers(1, 14, n_images)
    img_gt = np.repeat(np.arange(n_images), n_gt)
    w, h = rng.uniform(8, 300, (2, len(img_gt)))
    x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
    lab = rng.integers(0, n_classes, len(img_gt))
    ann = {"images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(n_images)],
           "annotations": [{"id": k + 1, "image_id": int(img_gt[k]), "category_id": int(lab[k]) + 1,
                            "bbox": [float(x[k]), float(y[k]), float(w[k]), float(h[k])], "area": float(w[k] * h[k]),
                            "iscrowd": 0} for k in range(len(img_gt))],
           "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(n_classes)]}
    ann_file.write_text(json.dumps(ann))

    def boxes(per: int, near: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = np.repeat(np.arange(n_images), per)
        start = np.r_[0, np.cumsum(n_gt)[:-1]]
        pick = start[img] + (rng.random(len(img)) * n_gt[img]).astype(np.int64)
        b = np.c_[x[pick], y[pick], x[pick] + w[pick], y[pick] + h[pick]]
        b += rng.normal(0, 0.15, b.shape) * np.c_[w[pick], h[pick], w[pick], h[pick]]
        rand = rng.random(len(img)) > near
        rx, ry, rs = rng.uniform(0, 600, len(img)), rng.uniform(0, 440, len(img)), rng.uniform(8, 200, (2, len(img)))
        b[rand] = np.c_[rx, ry, rx + rs[0], ry + rs[1]][rand]
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        labels = np.where(rng.random(len(img)) < 0.2, rng.integers(0, n_classes, len(img)), lab[pick])
        return img, b.astype(np.float32), labels

    def frame(img, b, labels) -> pd.DataFrame:
        n = len(img)
        cls = rng.beta(0.7, 3, n).astype(np.float32)
        obj = rng.beta(2, 2, n).astype(np.float32)
        iou = rng.beta(1, 2, n).astype(np.float32)
        return pd.DataFrame({"image_id": img.astype(np.int64), "label": labels.astype(np.int16), "cls": cls, "obj": obj,
                             "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3], "iou_same": iou,
                             "iou_any": np.maximum(iou, rng.beta(1, 2, n).astype(np.float32)),
                             "gt_same": np.full(n, -1, np.int32)})

    det = frame(*boxes(dets, 0.5))
    det["score"] = (det["cls"] ** 0.6 * det["obj"] ** 0.4).astype(np.float32)
    extra = frame(*boxes(max(cands - dets, 0), 0.3))
    cand = pd.concat([det.drop(columns="score"), extra], ignore_index=True)
    cand["level"] = rng.integers(0, 5, len(cand)).astype(np.int8)
    cand["anchor"] = rng.integers(0, 20000, len(cand)).astype(np.int32)
    return det, cand


class Stages:
    """Wall-clock and process-CPU seconds per named stage (CPU seconds, all threads of this
    process, are the load-independent view when other jobs share the cores)."""

    def __init__(self) -> None:
        self.wall: dict = {}
        self.cpu: dict = {}

    def __call__(self, name: str, fn, *args):
        s, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.wall[name] = round(time.perf_counter() - s, 2)
        self.cpu[name] = round(time.process_time() - c, 2)
        return out


EXTRA = ("AP at IoU 0.50-0.95, the other 3 scores", "TIDE size qualifiers (on top of TIDE)")


def imports() -> None:
    """The libraries the metrics load on first use (retconf's fusion pulls in mmdet)."""
    import netcal.metrics  # noqa: F401
    import tidecv  # noqa: F401

    from analysis.scoring.fusion import fuse_arrays

    fuse_arrays(np.ones(1, np.float32), np.ones(1, np.float32), "pow", 0.4, 0.5)


def measure(n_images: int, dets: int, cands: int, tide_sizes: bool = True) -> dict:
    """Seconds per stage for one detector: the issue's set (calibration, reliability and levels
    for each ranking score cls, obj, fused, oracle; oLRP per score and size; TIDE and AP(IoU) of
    the deployed score) and, apart, the extras the report also shows."""
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "gt.json"
        t0 = time.perf_counter()
        det, cand = synthetic(n_images, dets, cands, ann)
        gen_s = round(time.perf_counter() - t0, 2)
        meta = {"fusion": FUSION}
        st, ex = Stages(), Stages()
        st("imports (netcal, tidecv, retconf fusion)", imports)
        gt = st("ground truth", ground_truth, ann)
        scores = st("ranking scores", quality.ranking_scores, det, meta)
        st("calibration: LaECE + D-ECE protocol (4 scores + isotonic and Platt cls)", quality.calibration_rows,
           det, gt, scores)
        st("reliability after NMS (4 scores, 2 views)", quality.reliability_rows, det, gt, scores)
        st("reliability before NMS (4 scores x 6 level groups, 2 views)", quality.anchor_rows, cand, meta)
        levels = st("detection levels (join with candidates)", quality.detection_levels, det, cand)
        st("calibration per level after NMS (4 scores)", quality.level_rows, det, gt, scores, levels)
        st("calibration per object size after NMS (4 scores x 3 sizes)", quality.size_rows, det, gt, scores)
        st("oLRP (4 scores x 4 sizes)", quality.lrp_rows, det, gt, scores)
        st("TIDE, deployed score (tidecv)", tide_errors, det, gt, "score", None, False)
        st("AP at IoU 0.50-0.95, deployed score (faster-coco-eval)", quality.ap_iou_rows, det, str(ann), None,
           {"fused": scores["fused"]})
        ex(EXTRA[0], quality.ap_iou_rows, det, str(ann), None, {k: v for k, v in scores.items() if k != "fused"})
        if tide_sizes:
            ex("TIDE with size qualifiers", tide_errors, det, gt, "score", None, True)
            for d, base in ((ex.wall, st.wall), (ex.cpu, st.cpu)):
                d[EXTRA[1]] = round(d.pop("TIDE with size qualifiers") - base["TIDE, deployed score (tidecv)"], 2)
        return {"images": n_images, "dets_per_image": dets, "cands_per_image": cands,
                "detections": len(det), "candidates": len(cand), "ground_truths": len(gt), "synthesis_s": gen_s,
                "stages_s": st.wall, "stages_cpu_s": st.cpu, "total_s": round(sum(st.wall.values()), 2),
                "total_cpu_s": round(sum(st.cpu.values()), 2), "extras_s": ex.wall, "extras_cpu_s": ex.cpu,
                "total_with_extras_s": round(sum(st.wall.values()) + sum(ex.wall.values()), 2),
                "total_with_extras_cpu_s": round(sum(st.cpu.values()) + sum(ex.cpu.values()), 2)}


def markdown(result: dict) -> str:
    lines = ["# Beyond-AP metrics: speed (benchmarks/quality_metrics_speed.py)", "",
             f"Machine: {result['machine']}. Command: `{result['command']}`. Every number measured in this run.",
             f"{result.get('note', '')}", "",
             "Wall: wall-clock seconds. CPU: CPU seconds of the benchmark process (all its threads); "
             "where other jobs share the cores, CPU is the closer estimate of an idle machine's wall time "
             "for the single-threaded stages.", ""]
    for r in result["runs"]:
        lines += [f"## {r['images']:,} images, {r['dets_per_image']} detections / image after NMS, "
                  f"{r['cands_per_image']:,} candidates / image before", "",
                  f"{r['detections']:,} detections, {r['candidates']:,} candidates, {r['ground_truths']:,} ground "
                  f"truths (synthesis {r['synthesis_s']} s, not counted).", "",
                  "| stage | wall s | CPU s |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {r['stages_cpu_s'][k]} |" for k, v in r["stages_s"].items()]
        lines += [f"| **all of the issue's metrics** | **{r['total_s']}** | **{r['total_cpu_s']}** |"]
        lines += [f"| extra: {k} | {v} | {r['extras_cpu_s'][k]} |" for k, v in r["extras_s"].items()]
        lines += [f"| everything the report page computes | {r['total_with_extras_s']} | "
                  f"{r['total_with_extras_cpu_s']} |", ""]
    lines += ["Goal: all of the issue's metrics together <= 120 s at 5,000 images on 2 cores."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[5000], help="images (one run per value)")
    p.add_argument("--dets", type=int, default=100, help="detections per image after NMS")
    p.add_argument("--cands", type=int, default=5000, help="candidates per image before NMS")
    p.add_argument("--no-tide-sizes", action="store_true", help="skip TIDE's size qualifiers")
    p.add_argument("--note", default="", help="a line on the conditions (e.g. other load)")
    p.add_argument("--out", help="output prefix for .json and .md")
    args = p.parse_args(argv)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "note": args.note,
              "command": "python benchmarks/quality_metrics_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "runs": [measure(n, args.dets, args.cands, not args.no_tide_sizes) for n in args.images]}
    text = markdown(result)
    print(text)
    if args.out:
        from retconf.io import write_json_and_markdown

        write_json_and_markdown(args.out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""COCO evaluation of detections and COCO results json as input: labels to category ids by
mmdet's rule, COCO AP with the faster-coco-eval evaluator, and any detector's post-NMS
detections (a standard results json) in the dump's columns.

Glossary: D detections, G ground-truth boxes of one image.
"""
from __future__ import annotations

import json
import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from faster_coco_eval import COCO, COCOeval_faster

from retconf.data.coco_check import load_coco_json

# The metrics :func:`coco_ap` returns, in COCOeval's ``stats`` order.
COCO_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR", "ARs", "ARm", "ARl")

def category_ids(categories: Sequence[dict], classes: Optional[Sequence[str]] = None) -> list[int]:
    """Category id of each label, by mmdet's rule (``CocoDataset.cat_ids``, ``CocoMetric``):
    the annotation file's categories whose name is in ``classes``, in the file's order; label
    ``i`` is the ``i``-th of them. ``classes`` None: every category, in the file's order.

    This is the rule the model was trained with, so it is used everywhere a label becomes a
    category id (dumps, re-scoring, results json). It differs from "the id of ``classes[i]``"
    when the file lists the categories in another order than ``classes``.

    Args:
        categories: the ``categories`` list of a COCO annotation file.
        classes: the dataset's ``metainfo.classes``.
    """
    if classes is None:
        return [int(c["id"]) for c in categories]
    wanted = set(classes)
    return [int(c["id"]) for c in categories if c["name"] in wanted]


def coco_ap(detections: pd.DataFrame, ann_file: str, classes: Optional[Sequence[str]] = None,
            cat_ids: Optional[Sequence[int]] = None) -> dict:
    """COCO bbox metrics of ``detections`` (columns image_id, label, score, x1..y2) with the
    faster-coco-eval evaluator. Labels become category ids by ``cat_ids`` (a dump's
    ``meta['cat_ids']``) or else by :func:`category_ids`, evaluated on those categories as
    mmdet's ``CocoMetric`` does. Returns ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR"...}``."""
    gt = COCO(ann_file)
    ids = list(cat_ids) if cat_ids else category_ids(gt.dataset["categories"], classes)
    results = [{"image_id": int(r.image_id), "category_id": ids[int(r.label)],
                "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)],
                "score": float(r.score)} for r in detections.itertuples()]
    names = COCO_METRICS
    if not results:
        return {n: 0.0 for n in names}
    dt = gt.loadRes(results)
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = gt.getImgIds()
    ev.params.catIds = ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {n: float(v) for n, v in zip(names, ev.stats[:12])}


def dump_coco_ap(dump, detections: pd.DataFrame) -> dict:
    """:func:`coco_ap` of detections on a dump's images, with its label → category rule."""
    return coco_ap(detections, dump.meta["ann_file"], dump.meta["classes"], dump.meta.get("cat_ids"))


def check_coco_results(results: list, gt: dict, results_json: str, ann_file: str) -> None:
    """Refuse COCO results that cannot belong to the ground truth ``gt`` (read from ``ann_file``).

    Raises:
        ValueError: naming the first entry whose image_id or category_id ``gt`` lacks, or whose
            score or bbox is not finite (entries lacking a field are left to the caller).
    """
    image_ids = {img["id"] for img in gt.get("images", [])}
    cat_ids = {c["id"] for c in gt.get("categories", [])}
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            continue
        for field, known in (("image_id", image_ids), ("category_id", cat_ids)):
            if field in r and r[field] not in known:
                raise ValueError(f"{results_json}: entry {i} has {field} {r[field]!r}, which {ann_file} does not have")
        box = r.get("bbox") if isinstance(r.get("bbox"), list) else []
        if any(isinstance(v, float) and not math.isfinite(v) for v in [r.get("score"), *box]):
            raise ValueError(f"{results_json}: entry {i} has a non-finite score or bbox ({r.get('score')!r}, {r.get('bbox')!r})")


def detections_from_coco_results(results_json: str, ann_file: str,
                                 classes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Post-NMS detections of any detector, from a standard COCO results json, with the columns
    post-NMS analyses use (``image_id``, ``label``, ``score``, ``cls`` = score, ``obj`` = NaN,
    box corners and the :data:`analysis.schema.MATCH_COLUMNS`). Labels follow
    :func:`category_ids` (mmdet's rule) for ``classes``. Detections for images or categories
    the ground truth lacks are refused (:func:`check_coco_results`); crowd annotations are not
    matched, as in the dump."""
    gt = load_coco_json(ann_file)
    results = json.loads(open(results_json).read())
    if not isinstance(results, list):
        raise ValueError(f"{results_json}: a COCO results file is a JSON list of detections")
    check_coco_results(results, gt, results_json, ann_file)
    cat_index = {c: i for i, c in enumerate(category_ids(gt["categories"], classes))}
    gts: dict = {}
    for a in gt["annotations"]:  # as mmdet's gt_instances: known categories, no crowd
        if a["category_id"] in cat_index and not a.get("iscrowd", 0):
            x, y, w, h = a["bbox"]
            gts.setdefault(a["image_id"], []).append((x, y, x + w, y + h, cat_index[a["category_id"]]))
    rows = []
    for i, r in enumerate(results):
        try:
            x, y, w, h = r["bbox"]
            label = cat_index[r["category_id"]]
            image_id, score = r["image_id"], float(r["score"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{results_json}: entry {i} lacks a valid image_id/category_id/bbox/score ({e})") from e
        box = np.array([x, y, x + w, y + h], dtype=np.float64)
        g = np.array(gts.get(image_id, []), dtype=np.float64).reshape(-1, 5)
        rows.append((image_id, label, score, score, np.nan, *box, *_match_one(box, label, g)))
    cols = ["image_id", "label", "score", "cls", "obj", "x1", "y1", "x2", "y2",
            "iou_same", "iou_any", "gt_same", "gt_any", "gt_area"]
    return pd.DataFrame(rows, columns=cols)


def _match_one(box: np.ndarray, label: int, gts: np.ndarray) -> tuple:
    """The :data:`analysis.schema.MATCH_COLUMNS` of one box (x1, y1, x2, y2) against ground
    truths ``gts`` (float64[G, 5]: corners and label), as ``retconf.dump.match_gt``."""
    iou = _iou_one(box, gts[:, :4])
    same = np.where(gts[:, 4] == label, iou, -1.0)
    j = int(same.argmax()) if len(same) else -1
    k = int(iou.argmax()) if len(iou) and iou.max() > 0 else -1
    area = float((gts[k, 2] - gts[k, 0]) * (gts[k, 3] - gts[k, 1])) if k >= 0 else np.nan
    return (max(same.max(initial=-1.0), 0.0), iou.max(initial=0.0),
            j if j >= 0 and same[j] >= 0 else -1, k, area)


def _iou_one(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of one box (x1, y1, x2, y2) with each row of gts (Tensor-free, float64[G])."""
    iw = np.clip(np.minimum(box[2], gts[:, 2]) - np.maximum(box[0], gts[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], gts[:, 3]) - np.maximum(box[1], gts[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)

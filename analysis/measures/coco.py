"""COCO evaluation of detections and COCO results json as input: labels to category ids by
mmdet's rule, COCO AP with the faster-coco-eval evaluator, and any detector's post-NMS
detections (a standard results json) in the dump's columns.

Glossary: D detections, G ground-truth boxes of one image.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from faster_coco_eval import COCO, COCOeval_faster

from ..geometry.boxes import match_gt
from ..geometry.matching import (
    category_ids,  # noqa: F401  (mmdet's label rule; re-exported)
    label_cat_ids,
)
from ..inputs.coco_check import load_coco_json
from ..inputs.io import Dump, annotation_file
from ..inputs.schema import MATCH_COLUMNS
from . import coco_fast

# The metrics :func:`coco_ap` returns, in COCOeval's ``stats`` order.
COCO_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR", "ARs", "ARm", "ARl")
RECALL = np.linspace(0.0, 1.0, 101)  # COCO's recall points


def evaluated(gt: Any, dt: Any, cat_ids: Iterable[int], summarize: bool = True) -> Any:
    """faster-coco-eval's ``COCOeval_faster`` of results ``dt`` against ``gt`` (both ``COCO``), on
    every image of ``gt`` and on the categories ``cat_ids`` only (as mmdet's ``CocoMetric``):
    evaluated, accumulated and, with ``summarize``, summarised into ``stats`` (silently). The one
    COCOeval set-up of the project."""
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = gt.getImgIds()
    ev.params.catIds = [int(c) for c in cat_ids]
    ev.evaluate()
    ev.accumulate()
    if summarize:
        ev.summarize()
    return ev

def coco_ap(detections: pd.DataFrame, ann_file: str, classes: Sequence[str] | None = None,
            cat_ids: Sequence[int] | None = None) -> dict:
    """COCO bbox metrics of ``detections`` (columns image_id, label, score, x1..y2) with the
    faster-coco-eval evaluator. Labels become category ids by ``cat_ids`` (a dump's
    ``meta['cat_ids']``) or else by :func:`category_ids`, evaluated on those categories as
    mmdet's ``CocoMetric`` does. The annotation file is read once per (file, labels) for the
    calls that follow (:func:`cached_ground_truth`). Returns ``{"AP", "AP50", "AP75", "APs",
    "APm", "APl", "AR"...}``."""
    return coco_precision(cached_ground_truth(ann_file, classes, cat_ids), detections)[0]


def cached_ground_truth(ann_file: str | Path, classes: Sequence[str] | None = None,
                        cat_ids: Sequence[int] | None = None) -> GroundTruth:
    """:func:`coco_ground_truth`, read again only when the file changes (its path, size and
    modification time) or the labels do; the last four are kept."""
    st = Path(ann_file).stat()
    return _ground_truth(str(Path(ann_file).resolve()), st.st_size, st.st_mtime_ns,
                         None if classes is None else tuple(classes), None if cat_ids is None else tuple(cat_ids))


@functools.lru_cache(maxsize=4)
def _ground_truth(path: str, size: int, mtime_ns: int, classes: tuple | None, cat_ids: tuple | None) -> GroundTruth:
    return coco_ground_truth(path, classes, cat_ids)


def dump_coco_ap(dump: Dump, detections: pd.DataFrame) -> dict:
    """:func:`coco_ap` of detections on a dump's images, with its label → category rule."""
    return coco_ap(detections, dump.ann_file(), dump.meta["classes"], dump.meta.get("cat_ids"))


def _is_number(v: object) -> bool:
    """A JSON number (int or float, not a bool, not a string that looks like one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_coco_results(results: list, gt: dict, results_json: str, ann_file: str) -> None:
    """Refuse COCO results that cannot belong to the ground truth ``gt`` (read from ``ann_file``).

    Raises:
        ValueError: naming the first entry (its index and field) whose image_id or category_id
            ``gt`` lacks, whose score is not a number (a string such as ``"0.9"`` included) or
            whose bbox is not 4 numbers, or whose score or bbox is not finite (entries lacking a
            field are left to the caller).
    """
    image_ids = {img["id"] for img in gt.get("images", [])}
    cat_ids = {c["id"] for c in gt.get("categories", [])}
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            continue
        for field, known in (("image_id", image_ids), ("category_id", cat_ids)):
            if field in r and r[field] not in known:
                raise ValueError(f"{results_json}: entry {i} has {field} {r[field]!r}, which {ann_file} does not have")
        if "score" in r and not _is_number(r["score"]):
            raise ValueError(f"{results_json}: entry {i} field 'score' must be a number, got "
                             f"{type(r['score']).__name__} {r['score']!r}")
        if "bbox" in r and not (isinstance(r["bbox"], list) and len(r["bbox"]) == 4
                                and all(map(_is_number, r["bbox"]))):
            raise ValueError(f"{results_json}: entry {i} field 'bbox' must be 4 numbers [x, y, w, h], "
                             f"got {r['bbox']!r}")
        box: list = r["bbox"] if isinstance(r.get("bbox"), list) else []
        if any(isinstance(v, float) and not math.isfinite(v) for v in [r.get("score"), *box]):
            raise ValueError(f"{results_json}: entry {i} has a non-finite score or bbox "
                             f"({r.get('score')!r}, {r.get('bbox')!r})")


def detections_from_coco_results(results_json: str, ann_file: str,
                                 classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Post-NMS detections of any detector, from a standard COCO results json, with the columns
    post-NMS analyses use (``image_id``, ``label``, ``score``, ``cls`` = score, ``obj`` = NaN,
    box corners and the :data:`analysis.inputs.schema.MATCH_COLUMNS`). Labels follow
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
        rows.append((image_id, label, score, score, np.nan, float(x), float(y), float(x + w), float(y + h)))
    frame = pd.DataFrame(rows, columns=["image_id", "label", "score", "cls", "obj", "x1", "y1", "x2", "y2"])
    return frame.join(_matches(frame, gts))


def _matches(frame: pd.DataFrame, gts: dict) -> pd.DataFrame:
    """The :data:`analysis.inputs.schema.MATCH_COLUMNS` of detections ``frame`` (D rows) against the
    ground truths ``gts`` (image id -> [(x1, y1, x2, y2, label)]), per image by the dump's rule
    (:func:`analysis.geometry.boxes.match_gt`, in float64); indexed as ``frame``."""
    parts = []
    for image_id, rows in frame.groupby("image_id", sort=False).groups.items():
        det = frame.loc[rows]
        g = torch.tensor(gts.get(image_id, []), dtype=torch.float64).reshape(-1, 5)
        m = match_gt(torch.tensor(det[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)),
                     torch.tensor(det["label"].to_numpy(np.int64)), g[:, :4], g[:, 4].long())
        parts.append(pd.DataFrame({k: v.numpy() for k, v in m.items()}, index=rows))
    return pd.concat(parts) if parts else pd.DataFrame(columns=list(MATCH_COLUMNS), dtype=np.float64)


# ------------------------------------------------------------------ many detection sets on one file

@dataclass(frozen=True)
class GroundTruth:
    """A loaded COCO annotation file (faster-coco-eval ``COCO``), the category id of each label
    (int64[K]) and the file arranged for :func:`analysis.measures.coco_fast.array_precision`, for evaluating many
    detection sets (:func:`evaluate`, :func:`grid_cell`)."""

    coco: Any
    cat_ids: np.ndarray
    truth: coco_fast.Truth


def coco_ground_truth(ann_file: str | Path, classes: Sequence[str] | None = None,
                      cat_ids: Sequence[int] | None = None) -> GroundTruth:
    """:class:`GroundTruth` of ``ann_file`` with the project's label rule
    (:func:`analysis.geometry.matching.label_cat_ids`; ``cat_ids``: a dump's ``meta['cat_ids']``)."""
    coco = COCO(str(ann_file))
    ids = np.asarray(label_cat_ids(coco.dataset["categories"], classes, cat_ids), np.int64)
    return GroundTruth(coco, ids, coco_fast.truth(coco, ids))


def ann_path(dump: Dump, root: str | Path | None = None) -> Path:
    """A dump's annotation file, checked against the hash the dump recorded like every other
    reader of it (:meth:`analysis.inputs.io.Dump.ann_file`): a relative ``ann_file`` is taken relative to
    ``root`` when given, else as :func:`analysis.inputs.runs.run_path` finds it."""
    if root is None:
        return Path(dump.ann_file())
    meta = dict(dump.meta, ann_file=str(Path(root) / dump.meta["ann_file"]))
    return Path(annotation_file(meta, dump.path / "metadata.json"))


def dump_coco_truth(dump: Dump, root: str | Path | None = None) -> GroundTruth:
    """:func:`coco_ground_truth` of a dump's annotation file (:func:`ann_path`)."""
    return coco_ground_truth(ann_path(dump, root), dump.meta["classes"], dump.meta.get("cat_ids"))


def coco_precision(gt: GroundTruth, dets: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """COCO bbox metrics of ``dets`` (D rows: ``image_id``, ``label``, ``score``, box corners),
    the numbers :func:`analysis.measures.coco.coco_ap` gives, and the precision array float64[T, R, K]
    (area all, 100 detections; -1 where a class has no ground truth)."""
    if dets.empty:
        return {n: 0.0 for n in COCO_METRICS}, np.full((10, len(RECALL), len(gt.cat_ids)), -1.0)
    b = dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    arr = np.c_[dets["image_id"].to_numpy(np.float64), b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1],
                dets["score"].to_numpy(np.float64), gt.cat_ids[dets["label"].to_numpy()]]
    ev = evaluated(gt.coco, gt.coco.loadRes(arr), gt.cat_ids)
    return ({n: float(v) for n, v in zip(COCO_METRICS, ev.stats[:12])},
            np.asarray(ev.eval["precision"], np.float64)[:, :, :, 0, -1])



def array_stats(gt: GroundTruth, image: np.ndarray, label: np.ndarray, score: np.ndarray, boxes: np.ndarray,
                dets: pd.DataFrame | None = None) -> tuple[dict, np.ndarray]:
    """COCO bbox ``AP``, ``AP50``, ``AP75`` and ``AR`` (with the others :func:`coco_precision`
    gives when it is the one used) and the precision array float64[T, R, K] of D detections given
    as arrays: ``image``, ``label`` int64[D], ``score`` float[D], ``boxes`` float[D, 4] (x1, y1,
    x2, y2; float32 as in a dump, or float64). The numbers :func:`coco_ap` gives, computed by
    :func:`analysis.measures.coco_fast.array_precision`, or by faster-coco-eval
    (:func:`coco_precision`) for sets too large for its arrays (:func:`analysis.measures.coco_fast.fits`);
    ``dets``: the same as a frame, when at hand, for that fallback."""
    if len(image) and coco_fast.fits(gt.truth, len(image)):
        b = boxes.astype(np.float64)
        return coco_fast.array_precision(gt.truth, image, gt.cat_ids[label], score.astype(np.float64),
                                         np.c_[b[:, :2], b[:, 2:] - b[:, :2]])
    if dets is None:
        dets = pd.DataFrame({"image_id": image, "label": label, "score": score,
                             **{c: boxes[:, j] for j, c in enumerate(("x1", "y1", "x2", "y2"))}})
    return coco_precision(gt, dets)


def frame_stats(gt: GroundTruth, dets: pd.DataFrame) -> dict:
    """:func:`array_stats`' metrics of detections as a frame (``image_id``, ``label``, ``score``,
    box corners)."""
    return array_stats(gt, dets["image_id"].to_numpy(np.int64), dets["label"].to_numpy(np.int64),
                       dets["score"].to_numpy(np.float64), dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64),
                       dets)[0]

def pr_curves(precision: np.ndarray) -> dict:
    """Precision at each of the R recall points, averaged over the classes with ground truth:
    ``"iou50"`` at IoU 0.5, ``"mean"`` over the T IoU thresholds 0.50:0.95 as well (the curve whose
    average is AP). Lists of R floats (None where no class has a value)."""
    def mean(p: np.ndarray, axes: tuple[int, ...]) -> list:
        valid = p > -1
        total, count = np.where(valid, p, 0.0).sum(axes), valid.sum(axes)
        return [round(float(t / c), 4) if c else None for t, c in zip(total, count)]

    return {"iou50": mean(precision[0], (1,)), "mean": mean(precision.transpose(1, 0, 2), (1, 2))}

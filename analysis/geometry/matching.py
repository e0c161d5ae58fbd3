"""Ground truth and COCO-style one-to-one matching of post-NMS detections, shared by the
calibration (:mod:`analysis.measures.calibration`), LRP (:mod:`analysis.measures.lrp`) and TIDE
(:mod:`analysis.measures.tide`) metrics.

Glossary: D detections, G ground truths, P (image, class) groups.

Matching follows pycocotools' ``COCOeval.evaluateImg`` (which the LRP reference,
kemaloksuz/LRP-Error, and the LaECE reference, fiveai/detection_calibration, both build on):
per (image, class), detections in descending score order (stable sort, so ties keep their input
order), at most ``max_dets`` of them; each takes the unmatched ground truth with the highest IoU
if that IoU is >= ``tau`` (``tau`` capped at 1 - 1e-10; among equal IoUs the later ground truth
wins, as in pycocotools); a detection that matches nothing is a false positive. Ground truths
outside an area range (and crowd ground truths) are *ignored*: they are tried only when no regular
ground truth qualifies, a detection matched to one is ignored, as is an unmatched detection whose
own box area lies outside the range. Crowd ground truths use pycocotools' crowd IoU (intersection
over the detection's area) and may be matched more than once.

Object sizes are COCO's (``SIZES``): by ground-truth ``area`` (the annotation's area field;
box area where it is absent), small [0, 32²], medium [32², 96²], large [96², 1e10].
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .boxes import crowd_iou

SIZES: dict[str, tuple[float, float]] = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2),
                                         "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e10)}
BOX = ["x1", "y1", "x2", "y2"]
GT_COLUMNS = ["image_id", "label", *BOX, "area", "iscrowd"]


def category_ids(categories: Sequence[dict], classes: Sequence[str] | None = None) -> list[int]:
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


def label_cat_ids(categories: Sequence[dict], classes: Sequence[str] | None = None,
                  cat_ids: Sequence[int] | None = None) -> list[int]:
    """Category id of each label: ``cat_ids`` as given (a dump's ``meta['cat_ids']``, what the
    model was trained with) or else :func:`category_ids` of the file's ``categories``. Raises
    ``ValueError`` naming a class or id the file lacks."""
    known = {int(c["id"]) for c in categories}
    if cat_ids:
        ids = [int(c) for c in cat_ids]
        unknown = [c for c in ids if c not in known]
        if unknown:
            raise ValueError(f"no category with id {unknown[0]} in the annotation file")
        return ids
    if classes is not None:
        names = {c["name"] for c in categories}
        missing = [n for n in classes if n not in names]
        if missing:
            raise ValueError(f"no category named {missing[0]!r}")
    return category_ids(categories, classes)


def ground_truth(ann_file: str | Path, classes: Sequence[str] | None = None,
                 cat_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The ground truths of a COCO annotation file, one row per box.

    ``label`` follows the one label rule of the project (:func:`label_cat_ids`): label ``i`` is
    the category ``cat_ids[i]`` (a dump's ``meta['cat_ids']``) or, without them, the ``i``-th
    of the file's categories named in ``classes`` in the file's order (mmdet's
    ``CocoDataset.cat_ids``; every category without ``classes``), as the dump, re-scoring and
    :func:`analysis.measures.coco.detections_from_coco_results` number them. Categories without a label
    are dropped.

    Returns:
        columns ``image_id, label, x1, y1, x2, y2, area, iscrowd``; ``.attrs['image_ids']``
        holds every image id of the file (images without ground truth included).
    """
    data = json.loads(Path(ann_file).read_text())
    for field in ("images", "annotations", "categories"):
        if field not in data:
            raise ValueError(f"{ann_file}: missing field {field!r}")
    try:
        index = {c: i for i, c in enumerate(label_cat_ids(data["categories"], classes, cat_ids))}
    except ValueError as e:
        raise ValueError(f"{ann_file}: {e}") from None
    rows = []
    for a in data["annotations"]:
        if a["category_id"] not in index:
            continue
        x, y, w, h = a["bbox"]
        rows.append((a["image_id"], index[a["category_id"]], x, y, x + w, y + h,
                     a.get("area", w * h), int(a.get("iscrowd", 0))))
    gt = pd.DataFrame(rows, columns=GT_COLUMNS).astype(
        {"image_id": np.int64, "label": np.int64, "area": np.float64, "iscrowd": np.int8})
    gt.attrs["image_ids"] = np.array([int(i["id"]) for i in data["images"]], dtype=np.int64)  # array: cheap deepcopy
    return gt


def check_detections(dets: pd.DataFrame, score_col: str) -> None:
    """Raise ``ValueError`` naming the problem when ``dets`` cannot be scored by ``score_col``:
    a missing column or a NaN/infinite score. (An empty frame is valid.)"""
    for col in ("image_id", "label", *BOX, score_col):
        if col not in dets.columns:
            raise ValueError(f"detections lack column {col!r}")
    bad = ~np.isfinite(dets[score_col].to_numpy(dtype=np.float64))
    if bad.any():
        raise ValueError(f"score column {score_col!r} has {int(bad.sum())} NaN or infinite values "
                         f"(first at row {int(np.flatnonzero(bad)[0])})")


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """Corner boxes float[..., 4] as COCO's (x, y, w, h)."""
    return np.concatenate([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], axis=-1)


def coco_match(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str = "score", tau: float = 0.5,
               max_dets: int = 100, area: tuple[float, float] = SIZES["all"]) -> pd.DataFrame:
    """Match detections to ground truths as pycocotools does (see the module docstring).

    Args:
        dets: D detections (``image_id``, ``label``, box corners, ``score_col``).
        gt: ground truths from :func:`ground_truth`.
        tau: IoU threshold of a true positive.
        area: (lo, hi) area range; ground truths outside it are ignored.
    Returns:
        One row per kept detection (the top ``max_dets`` of each (image, class), sorted by
        (label, descending score)): ``row`` (index into ``dets``), ``image_id``, ``label``,
        ``score``, ``tp`` (bool), ``ignore`` (bool), ``iou`` (IoU with the matched ground truth,
        0 for a false positive), ``gt_area``. ``.attrs['npig']`` is a Series of the
        non-ignored ground-truth count per label; ``.attrs['labels']`` the labels present in
        the detections or the ground truth.
    """
    check_detections(dets, score_col)
    keep_gt = gt[np.isin(gt["image_id"].to_numpy(), np.asarray(gt.attrs.get("image_ids", gt["image_id"])))]
    crowd_all = keep_gt["iscrowd"].to_numpy() > 0
    g_ig = crowd_all | (keep_gt["area"].to_numpy() < area[0]) | (keep_gt["area"].to_numpy() > area[1])
    npig = pd.Series(~g_ig, index=keep_gt["label"].to_numpy()).groupby(level=0).sum()
    labels = sorted(set(npig.index.tolist()) | set(dets["label"].unique().tolist()))
    empty = pd.DataFrame({"row": np.zeros(0, np.int64), "image_id": np.zeros(0, np.int64),
                          "label": np.zeros(0, np.int64), "score": np.zeros(0), "tp": np.zeros(0, bool),
                          "ignore": np.zeros(0, bool), "iou": np.zeros(0), "gt_area": np.zeros(0)})
    if dets.empty:
        empty.attrs.update(npig=npig, labels=labels)
        return empty

    # detections: group (image, label), descending score, stable; keep top max_dets per group
    img, lab = dets["image_id"].to_numpy(np.int64), dets["label"].to_numpy(np.int64)
    sc = dets[score_col].to_numpy(np.float64)
    order = np.lexsort((-sc, lab, img))  # stable: ties keep their input order
    img, lab, sc = img[order], lab[order], sc[order]
    new_group = np.r_[True, (img[1:] != img[:-1]) | (lab[1:] != lab[:-1])]
    starts = np.flatnonzero(new_group)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = rank < max_dets
    d = pd.DataFrame({"row": order[keep], "image_id": img[keep], "label": lab[keep], "score": sc[keep],
                      "rank": rank[keep]})
    boxes = dets[BOX].to_numpy(np.float64)[d["row"].to_numpy()]

    # ground truths padded per group: regular ones first, ignored last (pycocotools' gt order)
    gk = keep_gt.assign(_ig=g_ig, _crowd=crowd_all).sort_values(["image_id", "label", "_ig"], kind="stable")
    gkey = pd.MultiIndex.from_frame(gk[["image_id", "label"]])
    groups = gkey.unique()
    slot = gk.groupby(["image_id", "label"], sort=False).cumcount().to_numpy()
    width = int(slot.max()) + 1 if len(slot) else 1
    gidx = groups.get_indexer(gkey)
    n_groups = len(groups)
    g_box = np.zeros((n_groups + 1, width, 4))
    g_valid = np.zeros((n_groups + 1, width), bool)
    g_ign = np.zeros((n_groups + 1, width), bool)
    g_crowd = np.zeros((n_groups + 1, width), bool)
    g_area = np.zeros((n_groups + 1, width))
    g_box[gidx, slot] = gk[BOX].to_numpy(np.float64)
    g_valid[gidx, slot] = True
    g_ign[gidx, slot] = gk["_ig"].to_numpy()
    g_crowd[gidx, slot] = gk["_crowd"].to_numpy()
    g_area[gidx, slot] = gk["area"].to_numpy(np.float64)
    dgroup = groups.get_indexer(pd.MultiIndex.from_frame(d[["image_id", "label"]]))
    dgroup = np.where(dgroup < 0, n_groups, dgroup)  # row n_groups: no ground truth

    n = len(d)
    tp, ign, iou_out, area_out = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n), np.full(n, np.nan)
    used = np.zeros((n_groups + 1, width), bool)
    thr = min(tau, 1 - 1e-10)
    rank = d["rank"].to_numpy()
    order = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(rank.max() + 2))
    for r in range(rank.max() + 1):  # one detection per group per step: no conflicts inside a step
        sel = order[bounds[r]:bounds[r + 1]]
        g = dgroup[sel]
        ious = crowd_iou(_xywh(boxes[sel]), _xywh(g_box[g]), g_crowd[g])
        free = g_valid[g] & (~used[g] | g_crowd[g])
        for want_ignored in (False, True):  # regular ground truths first, ignored ones only as fallback
            cand = np.where(free & (g_ign[g] == want_ignored), ious, -1.0)
            best = width - 1 - np.argmax(cand[:, ::-1], axis=1)  # the last of equal maxima
            best_iou = cand[np.arange(len(sel)), best]
            hit = (best_iou >= thr) & ~tp[sel] & ~ign[sel]
            if not want_ignored:
                tp[sel[hit]] = True
            else:
                ign[sel[hit]] = True
            iou_out[sel[hit]] = best_iou[hit]
            area_out[sel[hit]] = g_area[g[hit], best[hit]]
            used[g[hit], best[hit]] = True
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ign |= ~tp & ~ign & ((box_area < area[0]) | (box_area > area[1]))
    iou_out[~tp] = 0.0
    final = np.lexsort((-d["score"].to_numpy(), d["label"].to_numpy()))  # stable: images in id order
    out = pd.DataFrame({"row": d["row"].to_numpy()[final], "image_id": d["image_id"].to_numpy()[final],
                        "label": d["label"].to_numpy()[final], "score": d["score"].to_numpy()[final],
                        "tp": tp[final], "ignore": ign[final], "iou": iou_out[final], "gt_area": area_out[final]})
    out.attrs.update(npig=npig, labels=labels)
    return out

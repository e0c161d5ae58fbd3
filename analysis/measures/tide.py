"""TIDE error breakdown and AP as a function of the IoU threshold, of post-NMS detections.

- **TIDE** (Bolya et al., ECCV 2020) with the kept library ``tidecv`` (pinned in pyproject.toml),
  its defaults: foreground IoU 0.5, background IoU 0.1, box mode, at most 100 detections per
  image, dAP (in AP points, 0-100) of fixing each main error type (classification, localisation,
  both, duplicate, background, missed) one at a time, non-progressive, and the special
  FalsePos / FalseNeg dAPs. Every image of the annotation file is registered, so false positives
  on images without ground truth count (tidecv walks the ground truth's images only). Sizes use
  tidecv's own ``AREA`` qualifiers (box area w·h, small <= 32², medium (32², 96²], large > 96²):
  the dAP of fixing only the errors of objects of that size (NaN where tidecv's mAP divides by
  zero classes). tidecv 1.0.1 works unchanged with numpy 2.4 / pandas 3.1 (tested here); no shim
  is needed beyond that NaN.
- **AP(IoU)**: COCO AP at each IoU threshold 0.50, 0.55, ..., 0.95 (and per COCO size) with
  faster-coco-eval (pycocotools-compatible), read from ``eval['precision']``.

Both need post-NMS detections only (any COCO results json works).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd
from faster_coco_eval import COCO

from ..geometry.matching import BOX, check_detections, label_cat_ids
from .coco import evaluated

MAIN_ERRORS = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
SPECIAL_ERRORS = ("FalsePos", "FalseNeg")
IOU_THRS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@contextmanager
def _matplotlib_kept() -> Iterator[None]:
    """Undo what tidecv's ``TIDE()`` does to matplotlib: it sets seaborn's theme, which changes
    the global rcParams (font sizes, dpi 150, grid, palette) and redefines the colour codes
    ``b g r m y c k`` as seaborn's shades. Without this, every figure a page drew after TIDE
    changed style (a hatch drawn with ``edgecolor="r"`` turned seaborn's muted red)."""
    codes = {c: matplotlib.colors.colorConverter.colors[c] for c in "bgrmyck"}
    try:
        with matplotlib.rc_context():
            yield
    finally:
        for c, value in codes.items():
            matplotlib.colors.colorConverter.colors[c] = value


def _tide_data(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str, image_ids: Sequence[int]):
    """tidecv ``Data`` objects (ground truth with every image registered, predictions); boxes
    as [x, y, w, h]; crowd ground truths become ignore regions of their class."""
    from tidecv import Data

    g, p = Data("gt"), Data("pred")
    for i in image_ids:
        g.add_image(int(i), str(i))
    xywh = lambda f: np.c_[f["x1"], f["y1"], f["x2"] - f["x1"], f["y2"] - f["y1"]].tolist()  # noqa: E731
    for (i, k, c), box in zip(gt[["image_id", "label", "iscrowd"]].itertuples(index=False), xywh(gt)):
        if c:
            g.add_ignore_region(int(i), int(k), box)
        else:
            g.add_ground_truth(int(i), int(k), box)
    for (i, k, s), box in zip(dets[["image_id", "label", score_col]].itertuples(index=False), xywh(dets)):
        p.add_detection(int(i), int(k), float(s), box)
    return g, p


def tide_errors(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str = "score",
                image_ids: Sequence[int] | None = None, sizes: bool = True) -> pd.DataFrame:
    """TIDE dAP per error type (see the module docstring).

    Args:
        dets: post-NMS detections (``image_id``, ``label``, box corners, ``score_col``).
        gt: ground truth from :func:`analysis.geometry.matching.ground_truth`.
        image_ids: images to evaluate (default: the annotation file's, ``gt.attrs['image_ids']``).
        sizes: add rows for tidecv's Small / Medium / Large qualifiers.
    Returns:
        rows ``size`` ("all", "small", ...), ``error`` (``AP`` for TIDE's AP50, then the main and
        special errors), ``dAP`` (AP points). No ground truth: ValueError; no detection: AP 0 and
        NaN errors.
    """
    from tidecv import TIDE
    from tidecv.errors.qualifiers import AREA

    check_detections(dets, score_col)
    ids = list(gt.attrs.get("image_ids", gt["image_id"].unique())) if image_ids is None else list(image_ids)
    if (gt["iscrowd"] == 0).sum() == 0:
        raise ValueError("TIDE needs ground truth: none is given for these images")
    dets = dets[dets["image_id"].isin(set(ids))]
    if dets.empty:  # defined value: AP 0, nothing to fix (tidecv divides by zero here)
        names = ("AP", *MAIN_ERRORS, *SPECIAL_ERRORS)
        return pd.DataFrame({"size": "all", "error": names, "dAP": [0.0] + [float("nan")] * (len(names) - 1)})
    g, p = _tide_data(dets, gt[gt["image_id"].isin(set(ids))], score_col, ids)
    with _matplotlib_kept():
        tide = TIDE()
        run = tide.evaluate(g, p, mode=TIDE.BOX, name="run")
        rows = [{"size": "all", "error": "AP", "dAP": float(run.ap)}]
        rows += [{"size": "all", "error": e.short_name, "dAP": float(v)} for e, v in run.fix_main_errors().items()]
        rows += [{"size": "all", "error": e.short_name, "dAP": float(v)} for e, v in run.fix_special_errors().items()]
        if sizes:
            for q in AREA:
                try:
                    fixed = {e.short_name: float(v) for e, v in run.fix_main_errors(qual=q).items()}
                except ZeroDivisionError:  # tidecv's get_mAP with no class left: a documented NaN here
                    fixed = {e: float("nan") for e in MAIN_ERRORS}
                rows += [{"size": q.name.lower(), "error": e, "dAP": v} for e, v in fixed.items()]
    return pd.DataFrame(rows)


def ap_by_iou(dets: pd.DataFrame, ann_file: str, classes: Sequence[str] | None = None,
              score_col: str = "score", cat_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """COCO AP at each IoU threshold 0.50 ... 0.95, overall and per COCO size (faster-coco-eval).

    Labels become category ids by the project's one rule (:func:`analysis.geometry.matching.label_cat_ids`:
    ``cat_ids``, a dump's ``meta['cat_ids']``, or mmdet's file-order rule for ``classes``), and
    only those categories are evaluated, as mmdet's ``CocoMetric`` does.
    Returns rows ``iou_thr``, ``AP``, ``APs``, ``APm``, ``APl`` (NaN where a size has no ground
    truth; 0 without detections).
    """
    check_detections(dets, score_col)
    gt = COCO(ann_file)
    try:
        ids = np.array(label_cat_ids(gt.dataset["categories"], classes, cat_ids))
    except ValueError as e:
        raise ValueError(f"{ann_file}: {e}") from None
    if dets.empty:
        return pd.DataFrame({"iou_thr": IOU_THRS, "AP": 0.0, "APs": 0.0, "APm": 0.0, "APl": 0.0})
    b = dets[BOX].to_numpy(np.float64)
    arr = np.c_[dets["image_id"].to_numpy(np.float64), b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1],
                dets[score_col].to_numpy(np.float64), ids[dets["label"].to_numpy()]]
    ev = evaluated(gt, gt.loadRes(arr), ids, summarize=False)
    prec = np.asarray(ev.eval["precision"])[:, :, :, :, -1]  # [T, R, K, A] at maxDets 100

    def mean(a: np.ndarray) -> float:
        v = a[a > -1]
        return float(v.mean()) if v.size else float("nan")

    thrs = np.round(np.asarray(ev.params.iouThrs, dtype=np.float64), 2)
    return pd.DataFrame([{"iou_thr": float(t), "AP": mean(prec[i, :, :, 0]), "APs": mean(prec[i, :, :, 1]),
                          "APm": mean(prec[i, :, :, 2]), "APl": mean(prec[i, :, :, 3])}
                         for i, t in enumerate(thrs)])

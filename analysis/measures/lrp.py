"""Localisation-Recall-Precision (LRP) error and optimal LRP (oLRP) of post-NMS detections.

Definition: Oksuz et al., "One Metric to Measure them All: Localisation Recall Precision (LRP)
for Evaluating Visual Detection Tasks", TPAMI 2022 (ECCV 2018), as implemented in the reference
code kemaloksuz/LRP-Error (``pycocotools/pycocotools/cocoeval.py``, ``COCOeval.accumulate``),
whose conventions this module follows exactly:

- TP/FP from COCO matching (:func:`analysis.geometry.matching.coco_match`) at ``tau`` = 0.5 (the first
  COCO IoU threshold), top 100 detections per (image, class), area range "all" unless a size is
  asked for; ignored detections (crowd or out-of-range matches) count neither as TP nor FP.
- Per class, with the detections sorted by descending score and s the cut after each one:
  ``LRP(s) = (Σ_TP (1 - IoU) / (1 - tau) + FP + FN) / (TP + FP + FN)``; oLRP is its minimum
  (the first, i.e. highest-score, cut on ties), the class's LRP-optimal threshold is the score
  at that cut, and the components there are ``loc = Σ(1 - IoU) / TP``, ``FP = FP / (TP + FP)``,
  ``FN = FN / #GT``.
- A class with ground truth but no true positive: oLRP = 1, FN = 1, loc, FP and threshold NaN.
  A class without (non-ignored) ground truth is left out.
- The summary is the mean over classes of each quantity, NaNs left out (as the reference's
  ``np.mean(s[s > -1])``).

Works on post-NMS detections only (LRP is a metric of a detector's final output).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..geometry.matching import SIZES, coco_match

COMPONENTS = ("oLRP", "oLRP_loc", "oLRP_FP", "oLRP_FN")
# the columns of a per-dump oLRP row that the report averages over seeds (components, thresholds)
OLRP_COLUMNS = COMPONENTS + ("thr_mean", "thr_min", "thr_max")


def lrp_curve(tp: np.ndarray, iou: np.ndarray, n_gt: int, tau: float = 0.5) -> np.ndarray:
    """LRP after each detection of one class, ranked by descending score.

    Args:
        tp (bool[D]): true positive flags of the non-ignored detections, in rank order.
        iou (float[D]): IoU of each true positive (ignored where ``tp`` is False).
        n_gt: number of non-ignored ground truths (> 0).
    Returns:
        float[D]: LRP with the score threshold set just below detection i.
    """
    if n_gt <= 0:
        raise ValueError(f"n_gt must be positive, got {n_gt}")
    tp_num = np.cumsum(tp)
    fp_num = np.cumsum(~tp)
    loc = tp_num - np.cumsum(np.where(tp, iou, 0.0))
    fn_num = n_gt - tp_num
    return (loc / (1 - tau) + fp_num + fn_num) / (tp_num + fp_num + fn_num)


def class_olrp(scores: np.ndarray, tp: np.ndarray, iou: np.ndarray, n_gt: int, tau: float = 0.5) -> dict:
    """oLRP of one class and its components at the optimum (see the module docstring).

    Args:
        scores, tp, iou (float/bool/float[D]): non-ignored detections sorted by descending score.
    Returns:
        ``{"oLRP", "oLRP_loc", "oLRP_FP", "oLRP_FN", "threshold", "TP", "FP", "FN"}``.
    """
    if len(tp) == 0 or not np.any(tp):
        return {"oLRP": 1.0, "oLRP_loc": np.nan, "oLRP_FP": np.nan, "oLRP_FN": 1.0, "threshold": np.nan,
                "TP": 0, "FP": int(len(tp)), "FN": int(n_gt)}
    curve = lrp_curve(tp, iou, n_gt, tau)
    i = int(np.argmin(curve))
    n_tp, n_fp = int(tp[: i + 1].sum()), int((~tp[: i + 1]).sum())
    loc = n_tp - float(np.where(tp[: i + 1], iou[: i + 1], 0.0).sum())
    # the optimum can sit before the first TP when no cut beats LRP = 1 (e.g. one TP at IoU
    # exactly tau): the reference's 0/0 there gives NaN
    return {"oLRP": float(curve[i]), "oLRP_loc": loc / n_tp if n_tp else np.nan,
            "oLRP_FP": n_fp / (n_tp + n_fp) if n_tp + n_fp else np.nan,
            "oLRP_FN": (n_gt - n_tp) / n_gt, "threshold": float(scores[i]), "TP": n_tp, "FP": n_fp,
            "FN": n_gt - n_tp}


def olrp_per_class(matched: pd.DataFrame, tau: float = 0.5) -> pd.DataFrame:
    """:func:`class_olrp` for every class with ground truth, from a :func:`coco_match` output
    (matched at the same ``tau``). One row per label."""
    npig = matched.attrs["npig"]
    live = matched[~matched["ignore"].to_numpy()]
    by_label = {k: g for k, g in live.groupby("label", sort=True)}
    rows = []
    for label in matched.attrs["labels"]:
        n_gt = int(npig.get(label, 0))
        if n_gt == 0:
            continue
        g = by_label.get(label)
        if g is None:
            rows.append({"label": label, **class_olrp(np.zeros(0), np.zeros(0, bool), np.zeros(0), n_gt, tau)})
            continue
        rows.append({"label": label, **class_olrp(g["score"].to_numpy(), g["tp"].to_numpy(),
                                                  g["iou"].to_numpy(), n_gt, tau)})
    return pd.DataFrame(rows, columns=["label", *COMPONENTS, "threshold", "TP", "FP", "FN"])


def olrp_summary(per_class: pd.DataFrame) -> dict:
    """Mean over classes of oLRP and its components (NaNs left out), and the spread of the
    LRP-optimal thresholds (``thr_mean``, ``thr_min``, ``thr_max``; NaN where no class has one).
    No class with ground truth: every value NaN."""
    out = {c: float(per_class[c].mean()) if per_class[c].notna().any() else np.nan for c in COMPONENTS}
    thr = per_class["threshold"].dropna()
    out.update(thr_mean=float(thr.mean()) if len(thr) else np.nan,
               thr_min=float(thr.min()) if len(thr) else np.nan,
               thr_max=float(thr.max()) if len(thr) else np.nan, classes=int(len(per_class)))
    return out


def olrp(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str = "score", tau: float = 0.5,
         size: str = "all", max_dets: int = 100) -> dict:
    """oLRP summary (:func:`olrp_summary`) of detections ranked by ``score_col``, for the COCO
    object ``size`` ("all", "small", "medium", "large")."""
    matched = coco_match(dets, gt, score_col, tau, max_dets, SIZES[size])
    return olrp_summary(olrp_per_class(matched, tau))


def lrp_thresholds(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str = "score",
                   tau: float = 0.5) -> pd.Series:
    """Per-label LRP-optimal score thresholds (NaN for a class without true positives), as the
    calibration reference (fiveai/detection_calibration ``get_detection_thresholds``) fits them
    on a validation split."""
    pc = olrp_per_class(coco_match(dets, gt, score_col, tau), tau)
    return pc.set_index("label")["threshold"]


def threshold_curves(matched: pd.DataFrame, tau: float = 0.5) -> pd.DataFrame:
    """F1 and mean LRP of one score threshold shared by every class (what a deployment picks),
    at each distinct score of a :func:`coco_match` output (matched at ``tau``).

    At threshold t the detections with score ≥ t count: F1 = 2·TP / (TP + FP + #GT), pooled over
    classes; LRP(t) is :func:`lrp_curve`'s LRP of each class with ground truth at that cut, 1 for
    a class with no detection above t, averaged over those classes (oLRP instead lets each class
    pick its own threshold, so mean LRP(t) ≥ oLRP). Ignored detections count neither way.

    Returns:
        rows ``threshold`` (descending), ``TP``, ``FP``, ``F1``, ``LRP``; empty without detections.
    """
    npig = matched.attrs["npig"]
    live = matched[~matched["ignore"].to_numpy()]
    classes = [int(c) for c in npig.index if npig[c] > 0]
    n_gt = int(sum(int(npig[c]) for c in classes))
    if live.empty or n_gt == 0:
        return pd.DataFrame(columns=["threshold", "TP", "FP", "F1", "LRP"])
    score = live["score"].to_numpy(np.float64)
    thresholds = np.unique(score)[::-1]
    neg = -score
    order = np.argsort(neg, kind="stable")
    tp_sorted = live["tp"].to_numpy()[order]
    k = np.searchsorted(neg[order], -thresholds, side="right")  # detections with score >= t
    tp = np.r_[0, np.cumsum(tp_sorted)][k]
    fp = k - tp
    lrp = np.zeros(len(thresholds))
    for c in classes:
        g = live[live["label"].to_numpy() == c]
        s = -g["score"].to_numpy(np.float64)
        o = np.argsort(s, kind="stable")
        is_tp = g["tp"].to_numpy()[o]
        iou = g["iou"].to_numpy(np.float64)[o]
        kc = np.searchsorted(s[o], -thresholds, side="right")  # this class's detections with score >= t
        # LRP after the kc-th detection; with none above t it is 1 (every ground truth missed)
        lrp += np.r_[1.0, lrp_curve(is_tp, iou, int(npig[c]), tau)][kc]
    return pd.DataFrame({"threshold": thresholds, "TP": tp, "FP": fp, "F1": 2 * tp / (tp + fp + n_gt),
                         "LRP": lrp / len(classes)})


def best_thresholds(curves: pd.DataFrame) -> dict:
    """The one score threshold that maximises F1 and the one that minimises mean LRP, from
    :func:`threshold_curves` (on ties the highest threshold); NaN without detections."""
    if curves.empty:
        return {"best_F1": np.nan, "F1_thr": np.nan, "best_LRP": np.nan, "LRP_thr": np.nan}
    f, lrp = curves["F1"].to_numpy(), curves["LRP"].to_numpy()
    i, j = int(np.argmax(f)), int(np.argmin(lrp))  # first = highest threshold on ties
    thr = curves["threshold"].to_numpy()
    return {"best_F1": float(f[i]), "F1_thr": float(thr[i]), "best_LRP": float(lrp[j]), "LRP_thr": float(thr[j])}

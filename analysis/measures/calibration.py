"""Calibration of detection confidences: reliability-diagram data, D-ECE, LaECE and post-hoc
recalibration (isotonic regression) fitted on one split of the images, evaluated on the rest.

Glossary: D detections, B bins.

Definitions and the conventions followed (reference code: fiveai/detection_calibration,
``coco_calibration.py`` ``compute_single_errors`` / ``accumulate_errors`` and ``utils.py``):

- **LaECE** (Oksuz et al., CVPR 2023; Kuzucu et al., ECCV 2024): per class, B = 25 equal bins on
  [0, 1] (first bin [0, 1/25], the others (a, b]); in each bin ``|mean score - Σ IoU(TP) / n|``
  (a false positive contributes IoU 0), weighted by the bin's share of the class's detections;
  then the mean over classes that have ground truth and at least one detection. TP/FP from COCO
  matching at ``tau`` = 0.0 (their default, "LaECE_0": any same-class overlap can match). One
  deliberate difference: the reference turns a class whose error is exactly 0 into NaN (its way
  of dropping classes without detections); here such a class counts as 0 and classes without
  detections are dropped explicitly.
- **D-ECE** (Küppers et al., CVPR-W 2020, confidence-only form as in the ECCV 2024 reference):
  class-agnostic over the detections of classes with ground truth, B = 10 equal bins,
  ``Σ_b n_b / n · |precision_b - mean score_b|`` with TP at IoU >= 0.5. Computed by
  ``netcal.metrics.ECE(bins, detection=True)`` (the kept library); netcal's bins are
  left-closed [a, b) (numpy.histogramdd) where the reference's are right-closed (a, b]: the two
  differ only for scores lying exactly on a bin edge.
- **Operating thresholds**: the reference evaluates calibration on *thresholded* detections: for
  LaECE the per-class LRP-optimal thresholds (at the same ``tau``) fitted on the calibration
  split; for D-ECE a fixed 0.3 (its tutorial). A class without a threshold keeps all its
  detections, as the reference's ``threshold_detections`` does with NaN.
- **Recalibration** (reference ``fit``/``transform``): isotonic regression (scikit-learn,
  ``y_min=0, y_max=1, out_of_bounds='clip'``) or Platt scaling (:func:`fit_platt`) fitted on
  the fit split's thresholded detections;
  for LaECE per class with IoU targets, for D-ECE class-agnostic with TP (0/1) targets; on the
  evaluation split: threshold, recalibrate, threshold again with the thresholds fitted on the
  recalibrated fit split.

Post-NMS metrics need only detections and ground truth (any COCO results json works). The
pre-NMS *anchor* calibration (:func:`anchor_reliability`) needs a dump's candidates: it bins every
candidate (no matching, no NMS) against its own IoU.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..geometry.matching import check_detections, coco_match
from .lrp import lrp_thresholds

LAECE_BINS, LAECE_TAU = 25, 0.0
DECE_BINS, DECE_TAU, DECE_THR = 10, 0.5, 0.3


def bin_index(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each score (float[D] in [0, 1]) among ``n_bins`` equal bins, the reference's way:
    bin 0 is [0, 1/B], bin i > 0 is (i/B, (i+1)/B]. Returns int[D]."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges[1:-1], scores, side="left"), 0, n_bins - 1)


def reliability(scores: np.ndarray, target: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Reliability-diagram data: per bin (:func:`bin_index`), ``count``, ``share`` (of all
    rows), ``mean_score`` and ``mean_target`` (precision for 0/1 targets, precision × IoU for
    IoU targets; NaN in an empty bin), ``lo``/``hi`` bin edges.

    Args:
        scores (float[D]), target (float[D]).
    """
    scores, target = np.asarray(scores, np.float64), np.asarray(target, np.float64)
    if scores.shape != target.shape:
        raise ValueError(f"scores {scores.shape} and target {target.shape} differ in shape")
    b = bin_index(scores, n_bins)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s = np.bincount(b, scores, n_bins) / count
        mean_t = np.bincount(b, target, n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:], "count": count.astype(np.int64),
                         "share": count / max(len(scores), 1), "mean_score": mean_s, "mean_target": mean_t})


def expected_error(table: pd.DataFrame) -> float:
    """``Σ_b share_b · |mean_target_b - mean_score_b|`` of a :func:`reliability` table (NaN when
    it holds no row)."""
    if table["count"].sum() == 0:
        return float("nan")
    gap = (table["mean_target"] - table["mean_score"]).abs().fillna(0.0)
    return float((table["share"] * gap).sum())


def laece(matched: pd.DataFrame, n_bins: int = LAECE_BINS) -> dict:
    """LaECE of a :func:`analysis.geometry.matching.coco_match` output (matched at the LaECE ``tau``).

    Returns:
        ``{"LaECE": mean over classes (NaN without any), "classes": how many, "detections": n}``.
    """
    live = rows_with_gt(matched)
    errors = [expected_error(reliability(g["score"].to_numpy(), g["iou"].to_numpy(), n_bins))
              for _, g in live.groupby("label", sort=True)]
    return {"LaECE": float(np.mean(errors)) if errors else float("nan"), "classes": len(errors),
            "detections": int(len(live))}


def dece(matched: pd.DataFrame, n_bins: int = DECE_BINS) -> dict:
    """D-ECE of a :func:`analysis.geometry.matching.coco_match` output (matched at IoU 0.5) with netcal.

    Returns:
        ``{"D-ECE": value (NaN without detections), "detections": n}``.
    """
    live = rows_with_gt(matched)
    if live.empty:
        return {"D-ECE": float("nan"), "detections": 0}
    from netcal.metrics import ECE

    value = ECE(n_bins, detection=True).measure(live["score"].to_numpy(np.float64),
                                                live["tp"].to_numpy(np.float64))
    return {"D-ECE": float(value), "detections": int(len(live))}


def rows_with_gt(matched: pd.DataFrame) -> pd.DataFrame:
    """Non-ignored detections of classes with ground truth (what the reference's LaECE and
    D-ECE measure)."""
    npig = matched.attrs["npig"]
    live = matched[~matched["ignore"].to_numpy()]
    return live[live["label"].isin(npig[npig > 0].index).to_numpy()]


def apply_thresholds(dets: pd.DataFrame, score_col: str, thresholds: pd.Series | float) -> pd.DataFrame:
    """Detections with ``score >= threshold`` of their label (a float applies to all; a label
    without a threshold or with NaN keeps everything, as the reference)."""
    if isinstance(thresholds, (int, float)):
        return dets[dets[score_col].to_numpy() >= thresholds]
    thr = dets["label"].map(thresholds).to_numpy(np.float64)
    return dets[~(dets[score_col].to_numpy() < thr)]


def split_images(image_ids: Sequence[int], fit_fraction: float = 0.5, seed: int = 0) -> tuple[list, list]:
    """A random split of ``image_ids`` into (fit, evaluation) lists (fixed ``seed``)."""
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must lie in (0, 1), got {fit_fraction}")
    ids = np.array(sorted(set(int(i) for i in image_ids)))
    if len(ids) < 2:
        raise ValueError(f"need at least 2 images to split, got {len(ids)}")
    perm = np.random.default_rng(seed).permutation(ids)
    n_fit = min(max(int(round(fit_fraction * len(ids))), 1), len(ids) - 1)
    return sorted(perm[:n_fit].tolist()), sorted(perm[n_fit:].tolist())


def fit_isotonic(scores: np.ndarray, target: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Isotonic map score -> target (scikit-learn, clipped to [0, 1]); identity without data."""
    if len(scores) == 0:
        return lambda s: np.asarray(s, dtype=np.float64)
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        np.asarray(scores, np.float64), np.asarray(target, np.float64))
    return lambda s: np.clip(model.predict(np.asarray(s, np.float64)), 0.0, 1.0)


def fit_platt(scores: np.ndarray, target: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Platt scaling ``sigmoid(a · logit(s) + b)``, (a, b) minimising the binary cross-entropy
    to ``target`` (0/1 or an IoU), started at (1, 0), as the reference's ``PlattScaling`` (whose
    torch L-BFGS this replaces with scipy's: optima agree, iterates need not); identity without
    data."""
    if len(scores) == 0:
        return lambda s: np.asarray(s, dtype=np.float64)
    from scipy.optimize import minimize
    from scipy.special import expit, logit

    eps = float(np.finfo(np.float64).eps)
    z = logit(np.clip(np.asarray(scores, np.float64), eps, 1 - eps))
    y = np.asarray(target, np.float64)

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        u = p[0] * z + p[1]
        q = expit(u)
        value = np.mean(np.logaddexp(0.0, u) - y * u)
        return value, np.array([np.mean((q - y) * z), np.mean(q - y)])

    a, b = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return lambda s: expit(a * logit(np.clip(np.asarray(s, np.float64), eps, 1 - eps)) + b)


CALIBRATORS = {"isotonic": fit_isotonic, "platt": fit_platt}


def _subset(frame: pd.DataFrame, ids: Sequence[int]) -> pd.DataFrame:
    wanted = np.asarray(list(ids), dtype=np.int64)
    out = frame[np.isin(frame["image_id"].to_numpy(), wanted)]
    out.attrs = dict(frame.attrs)
    if "image_ids" in frame.attrs:
        known = np.asarray(frame.attrs["image_ids"], dtype=np.int64)
        out.attrs["image_ids"] = known[np.isin(known, ids)]
    return out


def _recalibrated(dets: pd.DataFrame, score_col: str, maps: dict | Callable) -> pd.DataFrame:
    """``dets`` with ``score_col`` passed through the per-label ``maps`` (or one map)."""
    s = dets[score_col].to_numpy(np.float64).copy()
    if callable(maps):
        s = maps(s) if len(s) else s
    else:
        labels = dets["label"].to_numpy()
        for label, f in maps.items():
            m = labels == label
            if m.any():
                s[m] = f(s[m])
    return dets.assign(**{score_col: s})


def laece_protocol(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str, fit_ids: Sequence[int],
                   eval_ids: Sequence[int], recalibrate: bool | str = False, tau: float = LAECE_TAU,
                   n_bins: int = LAECE_BINS) -> dict:
    """LaECE of ``score_col`` on the evaluation images, the reference's way: per-class
    LRP-optimal thresholds (at ``tau``) fitted on the fit images; with ``recalibrate`` (True or
    "isotonic", or "platt"), per-class isotonic regression (or Platt scaling) to the IoU fitted
    on the thresholded fit detections (classes with ground
    truth in the fit images; the others keep their scores), then thresholds refitted on the
    recalibrated thresholded fit detections (as the reference, whose ``threshold_detections``
    edits the validation list in place)."""
    check_detections(dets, score_col)
    d_fit, d_eval, g_fit, g_eval = (_subset(dets, fit_ids), _subset(dets, eval_ids),
                                    _subset(gt, fit_ids), _subset(gt, eval_ids))
    pre = lrp_thresholds(d_fit, g_fit, score_col, tau)
    if recalibrate:
        fit_kept = apply_thresholds(d_fit, score_col, pre)
        m = rows_with_gt(coco_match(fit_kept, g_fit, score_col, tau))  # classes with ground truth
        fit = CALIBRATORS["isotonic" if recalibrate is True else recalibrate]
        maps = {k: fit(g["score"].to_numpy(), g["iou"].to_numpy()) for k, g in m.groupby("label")}
        post = lrp_thresholds(_recalibrated(fit_kept, score_col, maps), g_fit, score_col, tau)
        d_eval = apply_thresholds(_recalibrated(apply_thresholds(d_eval, score_col, pre), score_col, maps),
                                  score_col, post)
    else:
        d_eval = apply_thresholds(d_eval, score_col, pre)
    return laece(coco_match(d_eval, g_eval, score_col, tau), n_bins)


def dece_protocol(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str, fit_ids: Sequence[int],
                  eval_ids: Sequence[int], recalibrate: bool | str = False, threshold: float = DECE_THR,
                  tau: float = DECE_TAU, n_bins: int = DECE_BINS) -> dict:
    """D-ECE of ``score_col`` on the evaluation images after the fixed ``threshold``; with
    ``recalibrate`` (True or "isotonic", or "platt"), a class-agnostic map to TP (0/1) fitted on the thresholded fit
    detections, applied, then thresholded again (the reference's D-ECE tutorial)."""
    check_detections(dets, score_col)
    d_eval = apply_thresholds(_subset(dets, eval_ids), score_col, threshold)
    if recalibrate:
        fit = rows_with_gt(coco_match(apply_thresholds(_subset(dets, fit_ids), score_col, threshold),
                                    _subset(gt, fit_ids), score_col, tau))
        f = CALIBRATORS["isotonic" if recalibrate is True else recalibrate](
            fit["score"].to_numpy(), fit["tp"].to_numpy(np.float64))
        d_eval = apply_thresholds(_recalibrated(d_eval, score_col, f), score_col, threshold)
    return dece(coco_match(d_eval, _subset(gt, eval_ids), score_col, tau), n_bins)


def detection_reliability(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str,
                          n_bins: int = DECE_BINS) -> pd.DataFrame:
    """Reliability data of post-NMS detections (all of them, no operating threshold), in two
    views: ``precision`` (TP at IoU 0.5) and ``precision x IoU`` (IoU of the match at tau 0.0,
    the LaECE target). Rows: :func:`reliability` columns plus ``view``."""
    parts = []
    for view, tau, col in (("precision", DECE_TAU, "tp"), ("precision x IoU", LAECE_TAU, "iou")):
        m = rows_with_gt(coco_match(dets, gt, score_col, tau))
        parts.append(reliability(m["score"].to_numpy(), m[col].to_numpy(np.float64), n_bins).assign(view=view))
    return pd.concat(parts, ignore_index=True)


def anchor_reliability(cands: pd.DataFrame | None, score: np.ndarray, iou: np.ndarray, n_bins: int = DECE_BINS,
                       iou_thr: float = 0.5, by: np.ndarray | None = None) -> pd.DataFrame:
    """Pre-NMS reliability of a score against each candidate's own IoU (no matching): views
    ``precision`` (IoU >= ``iou_thr``) and ``precision x IoU`` (the IoU itself), overall
    (``group='all'``) and per value of ``by`` (e.g. the pyramid level). Rows: :func:`reliability`
    columns plus ``view`` and ``group``. One pass of ``np.bincount`` per sum (millions of rows).
    (``cands`` is unused; kept for a uniform call.)"""
    score, iou = np.asarray(score, np.float64), np.asarray(iou, np.float64)
    if score.shape != iou.shape:
        raise ValueError(f"score {score.shape} and iou {iou.shape} differ in shape")
    b = bin_index(score, n_bins)
    values, g = (np.array([0]), np.zeros(len(score), np.int64)) if by is None else np.unique(by, return_inverse=True)
    cell = g.astype(np.int64) * n_bins + b
    size = len(values) * n_bins
    sums = {k: np.bincount(cell, w, size).reshape(len(values), n_bins)
            for k, w in (("count", None), ("score", score), ("precision", (iou >= iou_thr).astype(np.float64)),
                         ("precision x IoU", iou))}
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    names = ["all"] + ([] if by is None else [int(v) for v in values])
    parts = []
    for i, name in enumerate(names):
        def pick(a: np.ndarray, i: int = i - 1, every: bool = name == "all") -> np.ndarray:
            return a.sum(axis=0) if every else a[i]

        count = pick(sums["count"])
        for view in ("precision", "precision x IoU"):
            with np.errstate(invalid="ignore", divide="ignore"):
                parts.append(pd.DataFrame({"bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:],
                                           "count": count.astype(np.int64), "share": count / max(count.sum(), 1),
                                           "mean_score": pick(sums["score"]) / count,
                                           "mean_target": pick(sums[view]) / count, "view": view, "group": name}))
    return pd.concat(parts, ignore_index=True)


def calibration_errors(table: pd.DataFrame, by: Sequence[str] = ("view",)) -> pd.DataFrame:
    """:func:`expected_error` of each ``by`` group of a reliability table (with its row count)."""
    rows = []
    for key, g in table.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "ECE": expected_error(g), "n": int(g["count"].sum())})
    return pd.DataFrame(rows)

"""COCO AP under image resampling: how much of an AP (or of a paired AP difference) is the
sampling of the validation images.

Matching is per image (:func:`analysis.geometry.matching.coco_match`), so resampling images only
reweights each image's matched detections and ground truths: a bootstrap sample is a vector of
image weights (how many times each image was drawn), and its AP is COCO's accumulation
(pycocotools ``COCOeval.accumulate``: per class, detections by descending score, cumulative
TP/FP, the precision envelope read at the 101 recall thresholds; classes without ground truth
left out) with those weights. With every weight 1 it is COCO AP (tested against
faster-coco-eval).

Glossary: D detections, I images, T IoU thresholds (0.50 … 0.95), K classes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..geometry.matching import coco_match
from .seeds import interval, seeds_to_resolve

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Matched:
    """One detector's detections matched at every IoU threshold, indexed for reweighting.

    ``image`` (int[D]): position of each detection's image in ``image_ids``; ``label``
    (int[D]); ``score`` (float[D]); ``tp``, ``ignore`` (bool[T, D]); ``npig`` (int[I, K]):
    non-crowd ground truths per image and class; ``labels`` (int[K]). Detections come in
    :func:`analysis.geometry.matching.coco_match`'s order — by label, then descending score, ties in
    image order — which is COCO's accumulation order within a class."""

    image_ids: np.ndarray
    labels: np.ndarray
    image: np.ndarray
    label: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    ignore: np.ndarray
    npig: np.ndarray


def match_all(dets: pd.DataFrame, gt: pd.DataFrame, score_col: str = "score") -> Matched:
    """:class:`Matched` of ``dets`` against ``gt`` (:func:`analysis.geometry.matching.ground_truth`) on
    every image of ``gt.attrs['image_ids']``, at the ten COCO IoU thresholds."""
    image_ids = np.asarray(gt.attrs["image_ids"], dtype=np.int64)
    pos = {int(i): k for k, i in enumerate(image_ids)}
    base = coco_match(dets, gt, score_col, float(IOU_THRS[0]))
    labels = np.array(sorted(base.attrs["labels"]), dtype=np.int64)
    lab_pos = {int(k): j for j, k in enumerate(labels)}
    order = base["row"].to_numpy()
    tp = np.zeros((len(IOU_THRS), len(base)), bool)
    ignore = np.zeros_like(tp)
    for t, thr in enumerate(IOU_THRS):
        m = base if t == 0 else coco_match(dets, gt, score_col, float(thr)).set_index("row").loc[order]
        tp[t], ignore[t] = m["tp"].to_numpy(bool), m["ignore"].to_numpy(bool)
    regular = gt[(gt["iscrowd"].to_numpy() == 0) & np.isin(gt["image_id"].to_numpy(), image_ids)]
    npig = np.zeros((len(image_ids), len(labels)), np.int64)
    np.add.at(npig, (regular["image_id"].map(pos).to_numpy(np.int64),
                     regular["label"].map(lab_pos).to_numpy(np.int64)), 1)
    return Matched(image_ids, labels, base["image_id"].map(pos).to_numpy(np.int64),
                   base["label"].map(lab_pos).to_numpy(np.int64), base["score"].to_numpy(np.float64),
                   tp, ignore, npig)


def weighted_ap(m: Matched, weights: np.ndarray) -> float:
    """COCO AP (IoU 0.50:0.95, all areas, 100 detections) with image ``weights`` (float[I]; a
    bootstrap sample's draw counts; ones: plain COCO AP). NaN when no class has ground truth."""
    w_det = weights[m.image]
    gts = weights @ m.npig  # [K]
    values = []
    for k in range(len(m.labels)):
        if gts[k] <= 0:
            continue
        sel = np.flatnonzero(m.label == k)  # already by descending score (see Matched)
        w = w_det[sel]
        for t in range(len(IOU_THRS)):
            live = ~m.ignore[t, sel]
            tp = np.cumsum(np.where(live & m.tp[t, sel], w, 0.0))
            fp = np.cumsum(np.where(live & ~m.tp[t, sel], w, 0.0))
            keep = live & (w > 0)
            tp, fp = tp[keep], fp[keep]
            if not len(tp):
                values.append(0.0)
                continue
            rc = tp / gts[k]
            pr = tp / np.maximum(tp + fp, np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]  # the precision envelope
            idx = np.searchsorted(rc, REC_THRS, side="left")
            values.append(float(np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)], 0.0).mean()))
    return float(np.mean(values)) if values else float("nan")


def paired_bootstrap(a: Matched, b: Matched, resamples: int = 1000, seed: int = 0) -> dict:
    """AP(a) − AP(b) on the same images, and its spread under resampling the images.

    Args:
        a, b: two detectors matched on the same ground truth (same ``image_ids``).
    Returns:
        ``{"delta": AP(a) − AP(b), "sd": bootstrap sd of the difference, "lo", "hi": its 2.5 % and
        97.5 % quantiles, "sd_a", "sd_b": each AP's own bootstrap sd, "images": I}``.
    """
    if not np.array_equal(a.image_ids, b.image_ids):
        raise ValueError("the two detectors were matched on different images")
    n = len(a.image_ids)
    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(float)
    ap_a = np.array([weighted_ap(a, w) for w in draws])
    ap_b = np.array([weighted_ap(b, w) for w in draws])
    d = ap_a - ap_b
    ones = np.ones(n)
    return {"delta": weighted_ap(a, ones) - weighted_ap(b, ones), "sd": float(d.std(ddof=1)),
            "lo": float(np.quantile(d, 0.025)), "hi": float(np.quantile(d, 0.975)),
            "sd_a": float(ap_a.std(ddof=1)), "sd_b": float(ap_b.std(ddof=1)), "images": n}


def spread_sources(deltas: Sequence[float], boot_sds: Sequence[float], target: float = 0.01,
                   confidence: float = 0.95) -> dict:
    """Where the seed-to-seed spread of a paired difference comes from.

    The variance of a per-seed difference over seeds is the sum of evaluation sampling (which
    validation images happen to be drawn: the paired image bootstrap's variance on each fixed
    checkpoint, averaged over seeds) and training noise (everything else: seed, data order,
    floating-point order); the training part is what is left, floored at 0.

    Args:
        deltas: the paired difference on each seed (NaN: seed left out), shape (S,).
        boot_sds: its image-bootstrap sd on each seed's checkpoints, shape (S,).
        target: the half-width whose seed count is reported (``seeds_for_target``).
    Returns:
        ``seeds``, ``mean``, ``seed_sd``, ``half_width`` (95 % paired t), ``eval_sd`` (root mean
        bootstrap variance), ``eval_share`` (eval variance / seed variance, capped at 1),
        ``train_sd``, ``seeds_for_target`` and ``seeds_to_resolve`` (the observed mean) — NaN
        where fewer than two seeds give no spread.
    """

    d = np.asarray(deltas, dtype=float)
    b = np.asarray(boot_sds, dtype=float)
    if d.shape != b.shape:
        raise ValueError(f"{d.size} differences for {b.size} bootstrap sds")
    ok = np.isfinite(d) & np.isfinite(b)
    mean, sd, half, n = interval(d[ok], confidence)
    eval_var = float(np.mean(b[ok] ** 2)) if ok.any() else float("nan")
    out = {"seeds": n, "mean": mean, "seed_sd": sd, "half_width": half, "eval_sd": float(np.sqrt(eval_var)),
           "eval_share": float("nan"), "train_sd": float("nan"), "seeds_for_target": float("nan"),
           "seeds_to_resolve": float("nan")}
    if n >= 2:
        out.update(eval_share=min(1.0, eval_var / sd ** 2) if sd > 0 else float("nan"),
                   train_sd=float(np.sqrt(max(sd ** 2 - eval_var, 0.0))),
                   seeds_for_target=seeds_to_resolve(target, sd, confidence),
                   seeds_to_resolve=seeds_to_resolve(mean, sd, confidence) if mean != 0 else float("nan"))
    return out

"""COCO bbox AP and AR over all areas at 100 detections per image, the values faster-coco-eval
gives (pycocotools' differ in the last bit of some precisions: it adds ``eps`` to their
denominator), computed with array operations for re-scoring many detection sets against
one ground truth (:mod:`analysis.studies.explorer`'s slider grid and live widget).

pycocotools' procedure, step by step: per (image, category) the detections sorted by score
(stable, in input order) and cut to 100; IoU in float64 from ``[x, y, w, h]`` (a crowd's union
is the detection's area); ground truths ordered non-ignored first (crowd, or annotation ``area``
outside the range), each detection in turn matched at each IoU threshold to the eligible ground
truth of highest IoU ≥ ``min(t, 1 − 1e-10)`` (the last one on a tie), non-ignored before
ignored; then per category the detections of all images sorted by score (stable: image order,
then rank in the image), cumulative true and false positives, precision made monotone and read
at the 101 recall points. The matching runs over the detections' rank in their (image, category)
for all pairs at once. ``tests/analysis/test_coco_fast.py`` checks every value equal to
faster-coco-eval's, crowds and ties included.

Glossary: D detections, G ground truths, P (image, category) pairs with detections, T IoU
thresholds (10), R recall points (101), K categories, I images.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry.boxes import crowd_iou

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # pycocotools' Params
RECALL_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_ALL = (0.0, 1e5 ** 2)
MAX_DETS = 100
MAX_CELLS = 50_000_000  # detections × most ground truths in one pair, beyond which :func:`fits` says no


@dataclass(frozen=True)
class Truth:
    """Ground truth arranged for :func:`array_precision`: ``image_ids`` int64[I] and ``cat_ids`` int64[K]
    (sorted, as COCOeval's params), and per ground truth (G, sorted by pair ``img·K + cat``, then
    non-ignored first, then file order): ``pair`` int64[G], ``box`` float64[G, 4] (x, y, w, h),
    ``crowd`` and ``ignore`` bool[G]; ``npig`` int64[K], non-ignored ground truths per category."""

    image_ids: np.ndarray
    cat_ids: np.ndarray
    pair: np.ndarray
    box: np.ndarray
    crowd: np.ndarray
    ignore: np.ndarray
    npig: np.ndarray


def truth(coco: Any, cat_ids: Sequence[int] | np.ndarray) -> Truth:
    """:class:`Truth` of a loaded COCO object (``dataset`` and ``getImgIds``) over all its images
    and the categories ``cat_ids``."""
    images = np.unique(np.asarray(coco.getImgIds(), np.int64))
    cats = np.unique(np.asarray(cat_ids, np.int64))
    anns = coco.dataset.get("annotations", [])
    img = np.array([a["image_id"] for a in anns], np.int64)
    cat = np.array([a["category_id"] for a in anns], np.int64)
    box = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
    area = np.array([a["area"] for a in anns], np.float64)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
    i, k = _index(images, img), _index(cats, cat)
    ok = (i >= 0) & (k >= 0)
    ignore = crowd | (area < AREA_ALL[0]) | (area > AREA_ALL[1])
    pair = i * len(cats) + k
    order = np.lexsort((np.arange(len(anns)), ignore, pair))
    order = order[ok[order]]
    npig = np.bincount(k[ok & ~ignore], minlength=len(cats)).astype(np.int64)
    return Truth(images, cats, pair[order], box[order], crowd[order], ignore[order], npig)


def _index(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position of each of ``ids`` in ``sorted_ids`` (int64, -1 where absent)."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def fits(truth: Truth, n_dets: int) -> bool:
    """Whether :func:`array_precision` of ``n_dets`` detections stays within :data:`MAX_CELLS` IoU cells
    (an upper bound: every detection against the largest pair)."""
    if not len(truth.pair):
        return True
    return n_dets * int(np.bincount(truth.pair - truth.pair.min()).max()) <= MAX_CELLS


def array_precision(truth: Truth, image_id: np.ndarray, cat_id: np.ndarray, score: np.ndarray,
             box: np.ndarray) -> tuple[dict, np.ndarray]:
    """COCO bbox ``AP``, ``AP50``, ``AP75`` and ``AR`` (100 detections, all areas) of D detections
    (``image_id``, ``cat_id`` int64[D], ``score`` float64[D], ``box`` float64[D, 4] as x, y, w, h)
    and the precision array float64[T, R, K] (-1 where a category has no ground truth): the
    values of faster-coco-eval's ``COCOeval_faster`` at area ``all``, ``maxDets`` 100.
    Detections of images or categories outside ``truth`` are left out, as COCOeval does."""
    K, T = len(truth.cat_ids), len(IOU_THRS)
    i, k = _index(truth.image_ids, np.asarray(image_id, np.int64)), _index(truth.cat_ids, np.asarray(cat_id, np.int64))
    ok = (i >= 0) & (k >= 0)
    i, k = i[ok], k[ok]
    score, box = np.asarray(score, np.float64)[ok], np.asarray(box, np.float64)[ok]
    pair = i * K + k
    # per pair: decreasing score, ties in input order (mergesort); the first MAX_DETS
    order = np.lexsort((np.arange(len(pair)), -score, pair))
    pair, i, k, score, box = pair[order], i[order], k[order], score[order], box[order]
    new = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else np.zeros(0, bool)
    slot = np.cumsum(new) - 1
    rank = np.arange(len(pair)) - np.flatnonzero(new)[slot] if len(pair) else np.zeros(0, np.int64)
    keep = rank < MAX_DETS
    pair, i, k, score, box, slot, rank = (a[keep] for a in (pair, i, k, score, box, slot, rank))

    dtm, dtig = _match(truth, pair, slot, rank, box)
    area = box[:, 2] * box[:, 3]
    dtig |= ~dtm & ((area < AREA_ALL[0]) | (area > AREA_ALL[1]))[None, :]

    precision = -np.ones((T, len(RECALL_THRS), K))
    recall = -np.ones((T, K))
    # per category over all images: decreasing score, ties by image, then rank in the image
    order = np.lexsort((rank, i, -score, k))
    bounds = np.searchsorted(k[order], np.arange(K + 1))
    for c in range(K):
        if truth.npig[c] == 0:
            continue
        sel = order[bounds[c]:bounds[c + 1]]
        m, g = dtm[:, sel], dtig[:, sel]
        tp = np.cumsum(m & ~g, axis=1).astype(np.float64)
        fp = np.cumsum(~m & ~g, axis=1).astype(np.float64)
        nd = tp.shape[1]
        rc = tp / truth.npig[c]
        valid = tp + fp
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = np.where(valid > 0, tp / valid, 0.0)  # faster-coco-eval's (pycocotools adds eps)
        recall[:, c] = rc[:, -1] if nd else 0.0
        if not nd:
            precision[:, :, c] = 0.0
            continue
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        for t in range(T):
            at = np.searchsorted(rc[t], RECALL_THRS, side="left")
            q = np.zeros(len(RECALL_THRS))
            inside = at < nd
            q[inside] = pr[t, at[inside]]
            precision[t, :, c] = q

    def mean(a: np.ndarray) -> float:
        a = a[a > -1]
        return float(np.mean(a)) if len(a) else -1.0

    stats = {"AP": mean(precision), "AP50": mean(precision[np.flatnonzero(IOU_THRS == 0.5)[0]]),
             "AP75": mean(precision[np.flatnonzero(IOU_THRS == 0.75)[0]]), "AR": mean(recall)}
    return stats, precision


def _match(truth: Truth, pair: np.ndarray, slot: np.ndarray, rank: np.ndarray,
           box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of detections (sorted by pair, then rank; ``slot`` the pair's index, ``rank``
    the position in it, ``box`` float64[D, 4]) to ``truth``: matched bool[T, D] and ignored
    bool[T, D] (matched to an ignored ground truth). One step per rank, all pairs at once."""
    T, D = len(IOU_THRS), len(pair)
    dtm, dtig = np.zeros((T, D), bool), np.zeros((T, D), bool)
    g0 = np.searchsorted(truth.pair, pair, "left")
    gn = np.searchsorted(truth.pair, pair, "right") - g0
    G = int(gn.max()) if D else 0
    if G == 0:
        return dtm, dtig
    gi = np.minimum(g0[:, None] + np.arange(G), len(truth.pair) - 1)
    valid = np.arange(G)[None, :] < gn[:, None]
    crowd, ignore = truth.crowd[gi] & valid, truth.ignore[gi] & valid
    iou = crowd_iou(box, truth.box[gi], crowd)
    thr = np.minimum(IOU_THRS, 1 - 1e-10)
    taken = np.zeros((int(slot.max()) + 1, T, G), bool)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        d = by_rank[bounds[r]:bounds[r + 1]]
        s = slot[d]
        io = iou[d][:, None, :]  # [n, 1, G]
        free = valid[d][:, None, :] & ~(taken[s] & ~crowd[d][:, None, :])
        ok = free & (io >= thr[None, :, None])  # [n, T, G]
        ign = ignore[d][:, None, :]
        first = ok & ~ign
        cand = np.where(first.any(-1, keepdims=True), first, ok & ign)
        vals = np.where(cand, io, -np.inf)
        best = vals.max(-1, keepdims=True)
        hit = cand.any(-1)  # [n, T]
        last = G - 1 - np.argmax((cand & (vals == best))[..., ::-1], axis=-1)  # the last on a tie
        dtm[:, d] = hit.T
        dtig[:, d] = (hit & np.take_along_axis(ign[:, 0, :], last, axis=1)).T
        n, t = np.nonzero(hit)
        taken[s[n], t, last[n, t]] = True
    return dtm, dtig

"""mmcv's ``nms`` and ``batched_nms`` for re-scoring dumps, with or without mmcv.

With mmcv's compiled ops importable (the full install) these call mmcv itself, as before. Without
them (the light install of the analysis, docs/install.md) hard NMS runs on :func:`nms_reference`,
a port of mmcv 2.1's ``nms_cpu`` that keeps its every step: boxes ordered by torch's
``sort(descending=True)`` (the call ``nms_cpu`` makes, so ties break the same way), areas and
overlaps in float32 with ``offset``, a box suppressed when its IoU with a kept box above it is
``> iou_threshold`` as a C ``float``. ``tests/analysis/test_nms.py`` checks it equal to mmcv on
the committed dumps. Soft-NMS has no such port: without mmcv it raises :class:`MissingOpError`,
one line naming what to install.

Glossary: M boxes of one image, K kept boxes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..inputs.errors import RetconfError


class MissingOpError(RetconfError, ImportError):
    """An NMS kind the light install lacks (Soft-NMS needs mmcv's compiled ops)."""


def mmcv_ops() -> Any | None:
    """``mmcv.ops`` when it imports with its compiled ops, else None (the light install)."""
    try:
        from mmcv import ops
    except ImportError:
        return None
    return ops


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """Indices of the boxes greedy NMS keeps, in decreasing score: mmcv 2.1's ``nms_cpu`` step by
    step (module docstring) with torch's sort and numpy's float32 arithmetic.

    Args:
        boxes (Tensor[M, 4], float32): x1, y1, x2, y2. scores (Tensor[M], float32).
        iou_threshold: boxes with IoU > this with a kept box are dropped. offset: 0 or 1 (mmcv's).
    Returns:
        Tensor[K] (int64).
    """
    if offset not in (0, 1):
        raise ValueError(f"nms offset={offset!r} must be 0 or 1 (as mmcv's)")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.sort(scores, 0, True)[1]  # nms_cpu: std::get<1>(scores.sort(0, true))
    b = boxes.detach().to(torch.float32).numpy()[order.numpy()]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    off, zero, thr = np.float32(offset), np.float32(0), np.float32(iou_threshold)
    areas = (x2 - x1 + off) * (y2 - y1 + off)
    keep = np.ones(len(b), dtype=bool)
    for i in range(len(b)):
        if not keep[i]:
            continue
        w = np.maximum(zero, np.minimum(x2[i], x2[i + 1:]) - np.maximum(x1[i], x1[i + 1:]) + off)
        h = np.maximum(zero, np.minimum(y2[i], y2[i + 1:]) - np.maximum(y1[i], y1[i + 1:]) + off)
        inter = w * h
        keep[i + 1:] &= ~(inter / (areas[i] + areas[i + 1:] - inter) > thr)
    return order[torch.from_numpy(keep)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> tuple[Tensor, Tensor]:
    """``mmcv.ops.nms`` (tensors in, no score threshold): dets (Tensor[K, 5], box and score) and
    the kept indices (Tensor[K]); mmcv's op where it is installed, else :func:`nms_reference`."""
    ops = mmcv_ops()
    if ops is not None:
        return ops.nms(boxes, scores, iou_threshold, offset)
    keep = nms_reference(boxes, scores, iou_threshold, offset)
    return torch.cat((boxes[keep], scores[keep].reshape(-1, 1)), dim=1), keep


def nms_indices(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """The indices :func:`nms` keeps (Tensor[K], int64), by mmcv's compiled op called directly
    (what ``mmcv.ops.nms`` calls, without its Python wrapper, for many small calls) where it is
    installed, else :func:`nms_reference`. boxes Tensor[M, 4] and scores Tensor[M], float32."""
    ops = mmcv_ops()
    if ops is not None:
        from mmcv.ops.nms import ext_module

        return ext_module.nms(boxes, scores, iou_threshold=float(iou_threshold), offset=0)
    return nms_reference(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: dict | None,
                class_agnostic: bool = False) -> tuple[Tensor, Tensor]:
    """``mmcv.ops.batched_nms``: NMS per class (``idxs``) through mmcv's coordinate offsets, or
    over all boxes with ``class_agnostic``; mmcv's own where it is installed, else its code
    around :func:`nms` (hard NMS only).

    Args:
        boxes (Tensor[M, 4]), scores (Tensor[M]), idxs (Tensor[M]): class of each box.
        nms_cfg: mmdet's ``test_cfg.nms`` (``type``, ``iou_threshold``, ...); None: sort only.
    Returns:
        dets (Tensor[K, 5]) and keep (Tensor[K]) in decreasing score.
    """
    ops = mmcv_ops()
    if ops is not None:
        return ops.batched_nms(boxes, scores, idxs, nms_cfg, class_agnostic)
    if nms_cfg is None:
        scores, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores[:, None]], -1), inds
    cfg = dict(nms_cfg)
    if cfg.pop("class_agnostic", class_agnostic):
        boxes_for_nms = boxes
    else:
        offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        boxes_for_nms = boxes + offsets[:, None]
    kind = cfg.pop("type", "nms")
    if kind != "nms":
        raise MissingOpError(f"NMS type {kind!r} needs mmcv with compiled ops (the light install has hard NMS "
                             "only): install the full stack with `bash scripts/install.sh` (docs/install.md)")
    if boxes_for_nms.shape[0] < cfg.pop("split_thr", 10000):
        dets, keep = nms(boxes_for_nms, scores, **cfg)
        return torch.cat([boxes[keep], dets[:, -1:]], -1), keep
    max_num = cfg.pop("max_num", -1)
    total_mask = scores.new_zeros(scores.size(), dtype=torch.bool)
    scores_after_nms = scores.new_zeros(scores.size())
    for c in torch.unique(idxs):
        mask = (idxs == c).nonzero(as_tuple=False).view(-1)
        dets, keep = nms(boxes_for_nms[mask], scores[mask], **cfg)
        total_mask[mask[keep]] = True
        scores_after_nms[mask[keep]] = dets[:, -1]
    keep = total_mask.nonzero(as_tuple=False).view(-1)
    scores, inds = scores_after_nms[keep].sort(descending=True)
    keep = keep[inds]
    if max_num > 0:
        keep, scores = keep[:max_num], scores[:max_num]
    return torch.cat([boxes[keep], scores[:, None]], -1), keep


def first_survivors(boxes_at: Callable[[np.ndarray], np.ndarray], score: np.ndarray, nms_iou: float, cap: int,
                    start: int | None = None) -> tuple[np.ndarray, int]:
    """The first ``cap`` survivors of greedy NMS over one image's M boxes with scores float32[M]
    (``boxes_at(positions)``: those boxes, float32[n, 4], offset per class as ``batched_nms``
    does; only the prefix NMS needs is made): positions into the M boxes,
    in NMS order, and the length of the prefix that held them (all M when fewer survive). The
    boxes are ordered as mmcv's NMS orders them (torch's sort, which breaks ties its own way),
    and NMS runs on the top ``start`` (default 4·cap) of that order (more, as the survival rate
    so far suggests and at most 4×, until ``cap`` survive or all are in), ranked by position so
    that no tie is broken again: a box's fate depends only on the boxes above it, so any
    ``start`` gives the same survivors."""
    order = torch.sort(torch.from_numpy(score), 0, True).indices.numpy()  # as mmcv's nms_cpu sorts
    n = len(order)
    m = min(n, max(cap, 4 * cap if start is None else start))
    while True:
        top = order[:m]
        keep = nms_indices(torch.from_numpy(boxes_at(top)), torch.arange(m, 0, -1, dtype=torch.float32),
                           nms_iou).numpy()
        if len(keep) >= cap or m == n:
            keep = keep[:cap]
            return top[keep], int(keep[-1]) + 1 if len(keep) == cap else n
        m = min(n, 4 * m, max(m + cap, int(1.2 * m * cap / len(keep)) + 8))


SPLIT_THR = 10_000  # mmcv's batched_nms: from this many boxes on, NMS runs class by class (no offsets)
PREFIX_KEYS = frozenset({"type", "iou_threshold", "class_agnostic"})  # the nms_cfg keys :func:`capped_nms` takes


def capped_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, nms_cfg: dict,
               cap: int) -> np.ndarray | None:
    """The first ``cap`` indices :func:`batched_nms` keeps for one image (its ``keep[:cap]``), by
    greedy NMS on the prefix of the boxes that holds them (:func:`first_survivors`) instead of on
    all M; None where that is not the same computation: Soft-NMS, settings beyond
    :data:`PREFIX_KEYS`, or M ≥ :data:`SPLIT_THR` (``batched_nms`` then loops over the classes).

    Args:
        boxes float32[M, 4] (x1, y1, x2, y2), scores float32[M], labels int64[M]; ``nms_cfg``
        as for :func:`batched_nms`; ``cap`` ≥ 1.
    Returns:
        int64[min(cap, K)] indices into the M boxes, in decreasing score, or None.
    """
    if nms_cfg.get("type", "nms") != "nms" or not set(nms_cfg) <= PREFIX_KEYS or len(boxes) >= SPLIT_THR:
        return None
    if not len(boxes):
        return np.zeros(0, np.int64)
    if nms_cfg.get("class_agnostic", False):
        def boxes_at(pos: np.ndarray) -> np.ndarray:
            return boxes[pos]
    else:  # batched_nms' offsets: label · (the image's largest coordinate + 1), in float32
        top = boxes.max() + np.float32(1)

        def boxes_at(pos: np.ndarray) -> np.ndarray:
            return boxes[pos] + (labels[pos].astype(np.float32) * top)[:, None]
    return first_survivors(boxes_at, scores, float(nms_cfg["iou_threshold"]), cap)[0].astype(np.int64)


__all__ = ["MissingOpError", "batched_nms", "capped_nms", "first_survivors", "mmcv_ops", "nms", "nms_reference"]

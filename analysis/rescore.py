"""Re-scoring cached candidates under another fusion, with the inference-time NMS: fuse, select,
NMS. COCO evaluation lives in :mod:`analysis.coco`, the paper tables' rows in :mod:`analysis.tables`.

Glossary: C candidate rows of one image (an (anchor, class) pair each), D detections.

The procedure is the ranking rule of :class:`retconf.fusion.Fusion` (the one the heads and the
dump use): per level, fuse (before or after the top-k), keep scores > ``score_thr``, keep the top
``nms_pre``; then mmcv's ``batched_nms`` over the image and the top ``max_per_img``. With the
deployed rule of a dump (:func:`deployed_rule`) it reproduces live inference, for every head
family :mod:`retconf.capture` dumps.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from retconf.fusion import Fusion, fuse_scores


def fused_scores(cls: np.ndarray, obj: np.ndarray, mode: str, alpha: float, thr: float) -> np.ndarray:
    """Fusion of :mod:`retconf.fusion` on float arrays ``cls``, ``obj`` (shape [C])."""
    return fuse_scores(torch.tensor(cls), torch.tensor(obj), mode, alpha, thr).numpy()


def preselect(cands: pd.DataFrame, mode: str, alpha: float, thr: float, score_thr: float,
              nms_pre: int, min_bbox_size: float = 0.0, order: str = "before_topk") -> pd.DataFrame:
    """:func:`select_candidates` with the rule given by its fields."""
    return select_candidates(cands, Fusion(mode, alpha, thr, order), score_thr, nms_pre, min_bbox_size)


def select_candidates(cands: pd.DataFrame, rule: Fusion, score_thr: float, nms_pre: int,
                      min_bbox_size: float = 0.0) -> pd.DataFrame:
    """The candidates NMS sees, for all images at once: ``rule.rank`` > ``score_thr``, top
    ``nms_pre`` per (image, level), boxes larger than ``min_bbox_size`` (as mmdet's
    ``_bbox_post_process``), with ``score`` = the fused score. Rows come out ordered by image,
    level and descending rank. ``obj`` NaN (no quality score) counts as 1.

    ``order='after_topk'`` (mmdet's order; FCOS and ATSS with centerness): threshold and top-k
    on ``cls``, then fuse the survivors. Exact on a dump, whose candidate grid holds the ``cls``
    selection."""
    cls = torch.tensor(cands["cls"].to_numpy(np.float32))
    obj = torch.tensor(np.nan_to_num(cands["obj"].to_numpy(np.float32), nan=1.0))
    score = rule.scores(cls, obj).numpy().astype(np.float32, copy=False)
    rank = rule.rank(cls, obj).numpy().astype(np.float32, copy=False)
    rows = select_rows(cands["image_id"].to_numpy(), cands["level"].to_numpy(), rank, score_thr, nms_pre)
    if min_bbox_size >= 0:
        w = cands["x2"].to_numpy()[rows] - cands["x1"].to_numpy()[rows]
        h = cands["y2"].to_numpy()[rows] - cands["y1"].to_numpy()[rows]
        rows = rows[(w > min_bbox_size) & (h > min_bbox_size)]
    return cands.iloc[rows].assign(score=score[rows])


def select_rows(image: np.ndarray, level: np.ndarray, rank: np.ndarray, score_thr: float,
                nms_pre: int) -> np.ndarray:
    """Row numbers of the candidates NMS sees: ``rank`` > ``score_thr``, then the top
    ``nms_pre`` by ``rank`` per (image, level), ordered by image, level and descending rank
    (ties in input order, as a stable sort). As mmdet's ``filter_scores_and_topk`` (and
    :func:`retconf.fusion.topk_pairs`), a negative ``nms_pre`` is a slice end: -1 keeps all but
    the lowest-ranked pair of a level, 0 keeps none.

    Args:
        image, level, rank: per candidate, shape [N].
    Returns:
        int64[M] indices into the N candidates.
    """
    idx = np.flatnonzero(rank > score_thr)
    img, lvl = image[idx], level[idx]
    order = np.lexsort((-rank[idx], lvl, img))  # last key is primary; lexsort is stable
    idx, img, lvl = idx[order], img[order], lvl[order]
    if len(idx):
        new = np.r_[True, (img[1:] != img[:-1]) | (lvl[1:] != lvl[:-1])]
        pos = np.arange(len(idx))
        start = np.maximum.accumulate(np.where(new, pos, 0))
        group = np.cumsum(new) - 1
        size = np.bincount(group)[group]
        kept = np.minimum(nms_pre, size) if nms_pre >= 0 else np.maximum(size + nms_pre, 0)
        idx = idx[pos - start < kept]
    return idx


def nms_per_image(frame: pd.DataFrame, nms_iou: float, max_per_img: int) -> pd.DataFrame:
    """mmcv ``batched_nms`` (class-aware) on each image of a :func:`preselect` output, then the
    top ``max_per_img``; ``score`` is replaced by the score NMS returns."""
    from mmcv.ops import batched_nms  # late: importing ``analysis`` must not load mmcv

    if frame.empty:
        return frame
    boxes, scores, labels, starts, ends = nms_inputs(frame)
    rows, new_scores = [], []
    cfg = dict(type="nms", iou_threshold=nms_iou)
    for a, b in zip(starts, ends):
        dets, keep = batched_nms(boxes[a:b], scores[a:b], labels[a:b], cfg)
        rows.append(keep[:max_per_img].numpy() + a)
        new_scores.append(dets[:max_per_img, -1].numpy())
    out = frame.iloc[np.concatenate(rows)].copy()
    out["score"] = np.concatenate(new_scores)
    return out.reset_index(drop=True)


def nms_inputs(frame: pd.DataFrame) -> tuple:
    """Tensors for per-image NMS of a :func:`preselect` output: boxes (Tensor[M, 4]), scores
    (Tensor[M]), labels (Tensor[M]) and each image's row range (int arrays ``starts``, ``ends``)."""
    boxes = torch.tensor(frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
    scores = torch.tensor(frame["score"].to_numpy(np.float32))
    labels = torch.tensor(frame["label"].to_numpy(np.int64))
    image = frame["image_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    return boxes, scores, labels, starts, np.r_[starts[1:], len(image)]


def rescore(candidates: pd.DataFrame, mode: str = "pow", alpha: float = 0.4, thr: float = 0.5,
            score_thr: float = 0.05, nms_pre: int = 1000, nms_iou: float = 0.5,
            max_per_img: int = 100, min_bbox_size: float = 0.0, order: str = "before_topk") -> pd.DataFrame:
    """Detections of every image after re-scoring (one row per detection)."""
    return nms_per_image(preselect(candidates, mode, alpha, thr, score_thr, nms_pre, min_bbox_size, order),
                         nms_iou, max_per_img)


def inference_kwargs(meta: dict) -> dict:
    """``rescore`` keyword arguments equal to a dump's inference settings."""
    t = meta["test_cfg"]
    return dict(score_thr=t.get("score_thr", 0.0), nms_pre=t.get("nms_pre", -1),
                nms_iou=t["nms"]["iou_threshold"], max_per_img=t.get("max_per_img", 100),
                min_bbox_size=t.get("min_bbox_size", -1))


DEFAULT_FUSION = {"mode": "cls", "alpha": 0.0, "thr": 0.5, "order": "before_topk"}  # no quality score


def deployed_fusion(meta: dict) -> dict:
    """The ranking rule a dump's model deploys (``meta['fusion']``; a head without a separate
    quality score: ``cls``) as a dict with ``mode``, ``alpha``, ``thr`` and ``order``."""
    return {**DEFAULT_FUSION, **(meta.get("fusion") or {})}


def deployed_rule(meta: dict) -> Fusion:
    """:func:`deployed_fusion` as a :class:`retconf.fusion.Fusion`."""
    return Fusion.of(deployed_fusion(meta))

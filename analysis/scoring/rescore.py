"""Re-scoring cached candidates under another fusion, with the inference-time NMS: fuse, select,
NMS. COCO evaluation lives in :mod:`analysis.measures.coco`, the paper tables' rows in :mod:`analysis.studies.tables`.

Glossary: C candidate rows of one image (an (anchor, class) pair each), D detections.

The procedure is the ranking rule of :class:`analysis.scoring.fusion.Fusion` (the one the heads and the
dump use): per level, fuse (before or after the top-k), keep scores > ``score_thr``, keep the top
``nms_pre``; then mmcv's ``batched_nms`` (:mod:`analysis.geometry.nms`: mmcv's own, or its tested port
without mmcv) over the image and the top ``max_per_img``. With the
deployed rule of a dump (:func:`deployed_rule`) it reproduces live inference, for every head
family :mod:`retconf.capture` dumps; the deployed rule of a dump with ``fusion.legacy_level_bug``
(the original RetinaNet-Conf code's per-level ranking) is refused (:class:`LegacyRuleError`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..geometry.boxes import box_iou
from ..geometry.nms import batched_nms, capped_nms
from ..inputs.errors import RetconfError
from ..inputs.io import DumpError
from .fusion import BASE_POST_PROCESS, SELECTIONS, Fusion


def select_candidates(cands: pd.DataFrame, rule: Fusion, score_thr: float, nms_pre: int,
                      min_bbox_size: float = 0.0, selection: str = "pairs") -> pd.DataFrame:
    """The candidates NMS sees, for all images at once, under the head's ``selection`` (see
    :meth:`analysis.scoring.fusion.Fusion.select`): by default ``rule.rank`` > ``score_thr``, top
    ``nms_pre`` pairs per (image, level); then boxes larger than ``min_bbox_size`` (as mmdet's
    ``_bbox_post_process``; negative: no filter), with ``score`` = the fused score. Rows come
    out ordered by image and level, then as the head passes them to NMS. ``obj`` NaN (no
    quality score) counts as 1.

    ``order='after_topk'`` (mmdet's order; FCOS and ATSS with centerness): threshold and top-k
    on ``cls``, then fuse the survivors. Exact on a dump, whose candidate grid holds the ``cls``
    selection."""
    cls = torch.tensor(cands["cls"].to_numpy(np.float32))
    obj = torch.tensor(np.nan_to_num(cands["obj"].to_numpy(np.float32), nan=1.0))
    score = rule.scores(cls, obj).numpy().astype(np.float32, copy=False)
    rank = rule.rank(cls, obj).numpy().astype(np.float32, copy=False)
    image, level = cands["image_id"].to_numpy(), cands["level"].to_numpy()
    if selection == "pairs":
        rows = select_rows(image, level, rank, score_thr, nms_pre)
    elif selection == "anchors":
        rows = select_anchor_rows(image, level, cands["anchor"].to_numpy(), cands["label"].to_numpy(), rank,
                                  score_thr, nms_pre)
    elif selection == "argmax":
        rows = select_argmax_rows(image, level, cands["anchor"].to_numpy(), cls.numpy(), rank, score_thr)
    else:
        raise ValueError(f"selection {selection!r} is not one of {SELECTIONS}")
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
    :func:`analysis.scoring.fusion.topk_pairs`), a negative ``nms_pre`` is a slice end: -1 keeps all but
    the lowest-ranked pair of a level, 0 keeps none.

    Args:
        image, level, rank: per candidate, shape [N].
    Returns:
        int64[M] indices into the N candidates.
    """
    idx = np.flatnonzero(rank > score_thr)
    img, lvl = image[idx], level[idx]
    if _fits_key(img, lvl, rank, score_thr):
        # one stable sort of an int64 key (image, level, then the positive float32's bits reversed:
        # descending rank) in place of a three-key lexsort; ties stay in input order as there
        bits = rank[idx].view(np.uint32).astype(np.int64)
        key = (img.astype(np.int64) << 35) | (lvl.astype(np.int64) << 32) | (np.int64(0xFFFFFFFF) - bits)
        order = torch.sort(torch.from_numpy(key), stable=True).indices.numpy()
    else:
        order = np.lexsort((-rank[idx], lvl, img))  # last key is primary; lexsort is stable
    idx, img, lvl = idx[order], img[order], lvl[order]
    if len(idx):
        idx = idx[top_of_groups(np.r_[True, (img[1:] != img[:-1]) | (lvl[1:] != lvl[:-1])], nms_pre)]
    return idx


def _fits_key(image: np.ndarray, level: np.ndarray, rank: np.ndarray, score_thr: float) -> bool:
    """Whether :func:`select_rows`' int64 key holds these candidates: ``rank`` float32 above a
    ``score_thr`` ≥ 0 (positive, so its bits order as its values), image ids in [0, 2^28), levels
    in [0, 8)."""
    return (rank.dtype == np.float32 and score_thr >= 0 and len(image) > 0
            and image.min() >= 0 and image.max() < 1 << 28 and level.min() >= 0 and level.max() < 8)


def top_of_groups(new: np.ndarray, nms_pre: int) -> np.ndarray:
    """Which of M candidates, ordered by group and then by rank, are among the top ``nms_pre``
    of their group (bool[M]; ``new`` bool[M] marks each group's first; a negative ``nms_pre``
    is a slice end, as in :func:`select_rows`)."""
    starts = np.flatnonzero(new)
    if nms_pre >= 0 and np.diff(np.r_[starts, len(new)]).max() <= nms_pre:  # no group is cut
        return np.ones(len(new), bool)
    pos = np.arange(len(new))
    start = np.maximum.accumulate(np.where(new, pos, 0))
    group = np.cumsum(new) - 1
    size = np.bincount(group)[group]
    kept = np.minimum(nms_pre, size) if nms_pre >= 0 else np.maximum(size + nms_pre, 0)
    return pos - start < kept


def select_anchor_rows(image: np.ndarray, level: np.ndarray, anchor: np.ndarray, label: np.ndarray,
                       rank: np.ndarray, score_thr: float, nms_pre: int) -> np.ndarray:
    """Row numbers of the candidates NMS sees under PAA's selection
    (:func:`analysis.scoring.fusion.topk_anchors`): per (image, level) the top ``nms_pre`` anchors by
    their best ``rank`` (all when ``nms_pre`` ≤ 0), then their rows with ``rank`` >
    ``score_thr``; ordered by image, level, descending anchor best (anchor ascending when
    ``nms_pre`` ≤ 0), anchor, label.

    Exact on a dump: an anchor whose best pair passes ``score_thr`` outranks every anchor whose
    pairs all fail it, so taking the top-k among the anchors the dump holds (those with a pair
    above the threshold) keeps the same anchors as PAA's top-k over all of them. The order
    differs from PAA's on a level with at most ``nms_pre`` anchors, which PAA keeps in anchor
    order (the dump does not record a level's anchor count): the same pairs, but score voting
    then sums in another order (float32 rounding of the voted boxes).

    Args:
        image, level, anchor, label, rank: per candidate, shape [N].
    Returns:
        int64[M] indices into the N candidates.
    """
    idx = np.flatnonzero(rank > score_thr)
    frame = pd.DataFrame({"image": image[idx], "level": level[idx], "anchor": anchor[idx], "label": label[idx],
                          "rank": rank[idx], "row": idx})
    frame["best"] = frame.groupby(["image", "level", "anchor"], sort=False)["rank"].transform("max")
    if nms_pre <= 0:
        return frame.sort_values(["image", "level", "anchor", "label"], kind="stable")["row"].to_numpy(np.int64)
    frame = frame.sort_values(["image", "level", "best", "anchor", "label"],
                              ascending=[True, True, False, True, True], kind="stable")
    first = ~frame.duplicated(["image", "level", "anchor"])
    position = first.astype(np.int64).groupby([frame["image"], frame["level"]], sort=False).cumsum()
    return frame[position <= nms_pre]["row"].to_numpy(np.int64)


def select_argmax_rows(image: np.ndarray, level: np.ndarray, anchor: np.ndarray, cls: np.ndarray,
                       rank: np.ndarray, score_thr: float) -> np.ndarray:
    """Row numbers of the candidates NMS sees under YOLOX's selection
    (:func:`analysis.scoring.fusion.argmax_pairs`): per (image, level, anchor) the row of the highest
    ``cls`` (the first on ties), kept where its ``rank`` ≥ ``score_thr``; ordered by image,
    level, anchor.

    Args:
        image, level, anchor, cls, rank: per candidate, shape [N].
    Returns:
        int64[M] indices into the N candidates.
    """
    order = np.lexsort((-cls, anchor, level, image))  # stable: input order on ties
    key = np.stack([image[order], level[order], anchor[order]], 1)
    first = np.r_[True, (key[1:] != key[:-1]).any(1)] if len(order) else np.zeros(0, bool)
    best = order[first]
    return best[rank[best] >= score_thr]


def vote_boxes(boxes: torch.Tensor, labels: torch.Tensor, cand_boxes: torch.Tensor, cand_scores: torch.Tensor,
               cand_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PAA's score voting (``PAAHead.score_voting``) with torch alone: each detection's box
    becomes the average of the same-class candidates overlapping it (IoU > 0.01), weighted by
    exp(-(1 − IoU)² / 0.025) · score; the detections come out grouped by class, ascending, as
    PAA returns them.

    Args:
        boxes (Tensor[D, 4]), labels (Tensor[D]): detections after NMS.
        cand_boxes (Tensor[C, 4]), cand_scores (Tensor[C]), cand_labels (Tensor[C]): the
            candidates NMS saw, in the order the head passed them.
    Returns:
        voted boxes (Tensor[D, 4]) and the permutation of the D detections (Tensor[D]).
    """

    voted, order = [], []
    for c in torch.unique(cand_labels).tolist():
        dets = torch.nonzero(labels == c)[:, 0]
        cmask = cand_labels == c
        c_boxes, c_scores = cand_boxes[cmask], cand_scores[cmask]
        ious = box_iou(boxes[dets], c_boxes)
        for i, d in enumerate(dets.tolist()):
            pos = ious[i] > 0.01
            pis = (torch.exp(-(1 - ious[i][pos]) ** 2 / 0.025) * c_scores[pos])[:, None]
            voted.append(torch.sum(pis * c_boxes[pos], dim=0) / torch.sum(pis, dim=0))
            order.append(d)
    if not voted:
        return boxes[:0], torch.zeros(0, dtype=torch.long)
    return torch.stack(voted), torch.tensor(order, dtype=torch.long)


def nms_per_image(frame: pd.DataFrame, nms_iou: float, max_per_img: int | None,
                  score_voting: bool = False, nms_cfg: dict | None = None) -> pd.DataFrame:
    """mmcv ``batched_nms`` (:func:`analysis.geometry.nms.batched_nms`) on each image of a
    :func:`select_candidates` output, then the top ``max_per_img`` (None: all); ``score`` is
    replaced by the score NMS returns. ``nms_cfg``: the ``test_cfg.nms`` dict passed to
    ``batched_nms`` as mmdet passes it (Soft-NMS, ``class_agnostic``;
    :meth:`analysis.studies.postprocess.PostProcess.nms_cfg`); None: class-aware hard NMS at
    ``nms_iou``. ``score_voting`` (PAA): the kept boxes are then moved by :func:`vote_boxes` over
    the image's candidates (their IoU and ground-truth columns stay those of the box before
    voting; COCO AP, from :mod:`analysis.measures.coco`, matches the voted boxes itself). Hard NMS
    with a cap runs on the prefix of each image's boxes that holds its survivors
    (:func:`analysis.geometry.nms.capped_nms`): the same detections, in less time."""
    if frame.empty:
        return frame
    boxes, scores, labels, starts, ends = nms_inputs(frame)
    rows, new_scores, new_boxes = [], [], []
    cfg = dict(type="nms", iou_threshold=nms_iou) if nms_cfg is None else dict(nms_cfg)
    cap = max_per_img if max_per_img is not None and max_per_img > 0 and not score_voting else None
    np_boxes, np_scores, np_labels = boxes.numpy(), scores.numpy(), labels.numpy()
    for a, b in zip(starts, ends):
        first = None if cap is None else capped_nms(np_boxes[a:b], np_scores[a:b], np_labels[a:b], cfg, cap)
        if first is not None:  # the same keep[:max_per_img] from the prefix that holds it
            keep = torch.from_numpy(first)
            dets = torch.cat([boxes[a:b][keep], scores[a:b][keep, None]], 1)
        else:
            dets, keep = batched_nms(boxes[a:b], scores[a:b], labels[a:b], cfg)
            keep, dets = keep[:max_per_img], dets[:max_per_img]
        if score_voting and len(keep):
            voted, perm = vote_boxes(dets[:, :4], labels[a:b][keep], boxes[a:b], scores[a:b], labels[a:b])
            keep, dets = keep[perm], dets[perm]
            new_boxes.append(voted.numpy())
        else:
            new_boxes.append(dets[:, :4].numpy())
        rows.append(keep.numpy() + a)
        new_scores.append(dets[:, -1].numpy())
    out = frame.iloc[np.concatenate(rows)].copy()
    out["score"] = np.concatenate(new_scores)
    if score_voting:
        out[["x1", "y1", "x2", "y2"]] = np.concatenate(new_boxes)
    return out.reset_index(drop=True)


DETECTION_COLUMNS: tuple[str, ...] = ("image_id", "label", "score", "x1", "y1", "x2", "y2")  # what AP reads


def join_shards(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Detections replayed shard by shard (each :func:`nms_per_image` or :func:`rescore` output of
    one shard's candidates) as one frame in the order the whole dump's replay gives: by image id
    (a stable sort, so each image keeps its NMS order), index 0..D-1. A shard holds whole images,
    and the replay is per image, so the rows are the whole dump's replay's."""
    dets = pd.concat(parts, ignore_index=True) if len(parts) != 1 else parts[0]
    order = np.argsort(dets["image_id"].to_numpy(), kind="stable")
    return dets.iloc[order].reset_index(drop=True)

def nms_inputs(frame: pd.DataFrame) -> tuple:
    """Tensors for per-image NMS of a :func:`select_candidates` output: boxes (Tensor[M, 4]), scores
    (Tensor[M]), labels (Tensor[M]) and each image's row range (int arrays ``starts``, ``ends``)."""
    boxes = torch.tensor(frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
    scores = torch.tensor(frame["score"].to_numpy(np.float32))
    labels = torch.tensor(frame["label"].to_numpy(np.int64))
    image = frame["image_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    return boxes, scores, labels, starts, np.r_[starts[1:], len(image)]


def rescore(candidates: pd.DataFrame, mode: str = "pow", alpha: float = 0.4, thr: float = 0.5,
            score_thr: float = 0.05, nms_pre: int = 1000, nms_iou: float = 0.5,
            max_per_img: int | None = 100, min_bbox_size: float = 0.0, order: str = "before_topk",
            selection: str = "pairs", score_voting: bool = False, nms_cfg: dict | None = None) -> pd.DataFrame:
    """Detections of every image after re-scoring (one row per detection); ``nms_cfg`` as in
    :func:`nms_per_image` (other post-processing: :mod:`analysis.studies.postprocess`)."""
    pre = select_candidates(candidates, Fusion(mode, alpha, thr, order), score_thr, nms_pre, min_bbox_size, selection)
    return nms_per_image(pre, nms_iou, max_per_img, score_voting, nms_cfg)


def inference_kwargs(meta: dict) -> dict:
    """``rescore`` keyword arguments equal to a dump's inference settings: its ``test_cfg`` and
    its head's ``post_process`` (selection, score voting, whether ``min_bbox_size`` and
    ``max_per_img`` apply; ``max_per_img`` None: no limit)."""
    t = meta["test_cfg"]
    post = {**BASE_POST_PROCESS, **(meta.get("post_process") or {})}  # older dumps: BaseDenseHead's
    return dict(score_thr=t.get("score_thr", 0.0), nms_pre=t.get("nms_pre", -1),
                nms_iou=t["nms"]["iou_threshold"],
                max_per_img=t.get("max_per_img", 100) if post["max_per_img"] else None,
                min_bbox_size=t.get("min_bbox_size", -1) if post["min_bbox_size"] else -1,
                selection=post["selection"], score_voting=post["score_voting"])


DEFAULT_FUSION = {"mode": "cls", "alpha": 0.0, "thr": 0.5, "order": "before_topk"}  # no quality score
METADATA = "the dump's metadata.json"  # what an error names when the caller has no path


class LegacyRuleError(DumpError, RetconfError):
    """A dump whose model deploys the original RetinaNet-Conf code's ranking
    (``fusion.legacy_level_bug``): the product only on levels with more than ``nms_pre``
    anchors, ``cls^(1-α)`` on the others (:func:`analysis.scoring.fusion.legacy_level_scores`). A dump
    records neither a level's anchor count nor the candidates that rule keeps on the smaller
    levels (its candidate grid holds the product's), so its deployed rule cannot be replayed."""


def deployed_fusion(meta: dict, where: str | Path = METADATA) -> dict:
    """The ranking rule a dump's model deploys (``meta['fusion']``; a head without a separate
    quality score: ``cls``) as a dict with ``mode``, ``alpha``, ``thr`` and ``order``.

    Raises:
        LegacyRuleError: naming ``where`` (the dump's ``metadata.json``) and the field
        ``fusion.legacy_level_bug`` when it is true. Explicit rules (``rescore(mode=...)``)
        still re-score such a dump.
    """
    fusion = {**DEFAULT_FUSION, **(meta.get("fusion") or {})}
    if fusion.get("legacy_level_bug"):
        raise LegacyRuleError(f"{where}: field 'fusion.legacy_level_bug' is true (the original code's ranking: the "
                              "product only on levels with more than nms_pre anchors); the dump holds neither the "
                              "levels' anchor counts nor that rule's candidates, so its deployed rule cannot be "
                              "re-scored: re-score an explicit fusion, or evaluate live (retconf test)")
    return fusion


def deployed_rule(meta: dict, where: str | Path = METADATA) -> Fusion:
    """:func:`deployed_fusion` (which refuses ``fusion.legacy_level_bug``, naming ``where``) as a
    :class:`analysis.scoring.fusion.Fusion`."""
    return Fusion.of(deployed_fusion(meta, where))

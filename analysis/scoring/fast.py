"""Fast, exact re-scoring of a dump's candidates, for the explorer's grid and the live sliders.

It is :mod:`analysis.scoring.rescore`'s procedure (fuse, select, class-aware NMS, top
``max_per_img``), made fast and kept exact: NMS of an image runs on the prefix of its candidates,
in the order mmcv's NMS sorts them (ties included), that holds its first ``max_per_img``
survivors (greedy NMS decides a box from the boxes above it alone), with the box offsets mmcv's
``batched_nms`` computes over the whole image. The tests check that the detections equal
:func:`analysis.scoring.rescore.rescore`'s.

Glossary: C candidate rows of a dump, M candidates NMS sees, D detections.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..geometry.nms import SPLIT_THR, batched_nms, first_survivors
from .fusion import Fusion
from .rescore import inference_kwargs, nms_per_image, select_candidates, select_rows


@dataclass(frozen=True)
class Prepared:
    """A dump's candidates as arrays for repeated re-scoring (:func:`prepare`).

    ``cls``, ``obj`` (Tensor[C], obj NaN → 1 as :func:`analysis.scoring.rescore.select_candidates`),
    ``image``, ``level``, ``label`` (int64[C]), ``boxes`` (float32[C, 4]), ``big`` (bool[C]:
    wider and taller than ``min_bbox_size``, all True when it is negative), ``boxmax`` (float32[C],
    each box's largest coordinate), ``settings`` (the dump's
    :func:`analysis.scoring.rescore.inference_kwargs`) and the ``candidates`` themselves."""

    candidates: pd.DataFrame
    cls: torch.Tensor
    obj: torch.Tensor
    image: np.ndarray
    level: np.ndarray
    label: np.ndarray
    boxes: np.ndarray
    big: np.ndarray
    boxmax: np.ndarray
    settings: dict


def prepare(candidates: pd.DataFrame, meta: dict) -> Prepared:
    """:class:`Prepared` arrays of ``candidates`` (C rows) under the inference settings of
    ``meta`` (a dump's metadata)."""
    settings = inference_kwargs(meta)
    boxes = candidates[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    mbs = settings["min_bbox_size"]
    big = (w > mbs) & (h > mbs) if mbs >= 0 else np.ones(len(boxes), bool)
    return Prepared(candidates, torch.tensor(candidates["cls"].to_numpy(np.float32)),
                    torch.tensor(np.nan_to_num(candidates["obj"].to_numpy(np.float32), nan=1.0)),
                    candidates["image_id"].to_numpy(np.int64), candidates["level"].to_numpy(np.int64),
                    candidates["label"].to_numpy(np.int64), boxes, big, boxes.max(1), settings)


def nms_inputs(prep: Prepared, rule: Fusion) -> tuple[np.ndarray, np.ndarray]:
    """The candidates NMS sees under ``rule``: row numbers int64[M] into ``prep.candidates``
    (ordered by image, level, then as the head passes them) and their fused scores float32[M];
    the rows of :func:`analysis.scoring.rescore.select_candidates`."""
    s = prep.settings
    if s["selection"] != "pairs":
        frame = select_candidates(prep.candidates.assign(_row=np.arange(len(prep.candidates))), rule, s["score_thr"],
                                  s["nms_pre"], s["min_bbox_size"], s["selection"])
        return frame["_row"].to_numpy(np.int64), frame["score"].to_numpy(np.float32)
    score = rule.scores(prep.cls, prep.obj).numpy().astype(np.float32, copy=False)
    rank = score if rule.order == "before_topk" else prep.cls.numpy()
    rows = select_rows(prep.image, prep.level, rank, s["score_thr"], s["nms_pre"])
    rows = rows[prep.big[rows]]
    return rows, score[rows]


def nms_rows(prep: Prepared, rows: np.ndarray, score: np.ndarray, nms_iou: float,
             max_per_img: int | None = -1, hints: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image NMS of :func:`nms_inputs`'s output, as :func:`analysis.scoring.rescore.nms_per_image` (mmcv
    ``batched_nms``, then the top ``max_per_img``): the surviving rows int64[D] (by image, then in
    NMS order) and their scores float32[D]. ``max_per_img`` -1: the dump's setting; None: no cap
    (then, and for an image of 10,000 boxes or more, ``batched_nms`` itself runs). Score voting
    goes through :func:`analysis.scoring.rescore.nms_per_image`. ``hints`` (image id → prefix length,
    updated in place): where each image's NMS starts (:func:`analysis.geometry.nms.first_survivors`), a little past
    the prefix the last call needed (else past what the images before needed); the result does
    not depend on it, only the time."""
    s = prep.settings
    cap = s["max_per_img"] if max_per_img == -1 else max_per_img
    if not len(rows):
        return rows, score
    if s["score_voting"] or cap is None:
        frame = prep.candidates.iloc[rows].assign(score=score, _row=rows)
        out = nms_per_image(frame, nms_iou, cap, s["score_voting"])
        return out["_row"].to_numpy(np.int64), out["score"].to_numpy(np.float32)
    image = prep.image[rows]
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    # batched_nms' class offsets, over each whole image: label · (max coordinate + 1), in float32
    tops = np.maximum.reduceat(prep.boxmax[rows], starts) + np.float32(1)
    kept: list[np.ndarray] = []
    needs: list[int] = []
    for a, b, top in zip(starts, ends, tops):
        seg = rows[a:b]
        if b - a >= SPLIT_THR:  # batched_nms' per-class loop
            _, keep = batched_nms(torch.from_numpy(prep.boxes[seg]), torch.from_numpy(score[a:b]),
                                  torch.from_numpy(prep.label[seg]), dict(type="nms", iou_threshold=nms_iou))
            kept.append(a + keep.numpy()[:cap])
        else:
            def boxes_at(pos: np.ndarray, seg: np.ndarray = seg, top: np.float32 = top) -> np.ndarray:
                r = seg[pos]
                return prep.boxes[r] + (prep.label[r].astype(np.float32) * top)[:, None]

            i = int(image[a])
            if hints is not None and i in hints:
                start = hints[i] + hints[i] // 5 + 8
            else:  # a little more than the images before needed
                start = int(1.2 * np.mean(needs[-32:])) + 8 if needs else None
            pos, need = first_survivors(boxes_at, score[a:b], nms_iou, cap, start)
            needs.append(need)
            if hints is not None:
                hints[i] = need
            kept.append(a + pos)
    out = np.concatenate(kept)
    return rows[out], score[out]


def fast_rescore(prep: Prepared, rule: Fusion, nms_iou: float | None = None,
                 max_per_img: int | None = -1) -> pd.DataFrame:
    """Detections of every image re-scored with ``rule`` and NMS at ``nms_iou`` (None: the dump's):
    the rows of :func:`analysis.scoring.rescore.rescore` (same candidates, same order, ``score`` the fused
    score) with ``row``, the candidate's row number in ``prep.candidates``."""
    rows, score = nms_inputs(prep, rule)
    kept, kscore = nms_rows(prep, rows, score, prep.settings["nms_iou"] if nms_iou is None else nms_iou, max_per_img)
    return prep.candidates.iloc[kept].assign(score=kscore, row=kept).reset_index(drop=True)



class one_torch_thread:
    """Context manager: torch on one thread inside (small tensors gain nothing from more, and on
    a busy machine its thread pool is many times slower), the previous count restored after."""

    def __enter__(self) -> one_torch_thread:
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.threads)

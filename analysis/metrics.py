"""Misalignment metrics on dump DataFrames (pure functions: DataFrame in → DataFrame/float out).

Column conventions follow ``retconf.dump``: ``cls`` raw classification score, ``obj`` object
confidence, ``score`` the score NMS ranked by, ``iou_same`` best IoU with a ground truth of the
same class, ``gt_same`` that ground truth's index (-1: none).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

CLS_THRS: tuple[float, ...] = (0.05, 0.5, 0.6, 0.7, 0.8, 0.9)
IOU_THRS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


def count_table(before: pd.DataFrame, after: pd.DataFrame, images: pd.DataFrame,
                image_ids: Optional[Sequence[int]] = None, cls_thrs: Iterable[float] = CLS_THRS,
                iou_thrs: Iterable[float] = IOU_THRS, base_cls: float = 0.05,
                iou_col: str = "iou_same") -> pd.DataFrame:
    """Box counts per image in the layout of the paper's intro Table 1.

    Rows ``(stage, condition)``: positive anchors (IoU > 0.5); before NMS the predictions with
    cls > t and, among those with cls > ``base_cls`` (what the detector outputs), IoU > t; the
    same after NMS. Columns: one per image id.

    Args:
        before: pre-NMS candidates (``cls``, ``iou_same``, ``image_id``).
        after: post-NMS detections (same columns).
        images: per-image table with ``positive_anchors``.
        image_ids: images to show (default: all, sorted).
    """
    ids = list(image_ids) if image_ids is not None else sorted(images["image_id"].unique())
    cls_thrs, iou_thrs = list(cls_thrs), list(iou_thrs)

    def counts(df: pd.DataFrame, stage: str) -> list[tuple]:
        rows = []
        for t in cls_thrs:
            c = (df["cls"] > t).groupby(df["image_id"]).sum()
            rows.append((stage, f"cls>{t:g}", [int(c.get(i, 0)) for i in ids]))
        base = df[df["cls"] > base_cls]
        for t in iou_thrs:
            c = (base[iou_col] > t).groupby(base["image_id"]).sum()
            rows.append((stage, f"iou>{t:g}", [int(c.get(i, 0)) for i in ids]))
        return rows

    pos = images.set_index("image_id")["positive_anchors"]
    rows = [("positive_anchors", "iou>0.5", [int(pos.get(i, 0)) for i in ids])]
    rows += counts(before, "before_nms") + counts(after, "after_nms")
    table = pd.DataFrame([r[2] for r in rows], columns=[f"image{i}" for i in ids])
    table.insert(0, "condition", [r[1] for r in rows])
    table.insert(0, "stage", [r[0] for r in rows])
    return table


def proportions(df: pd.DataFrame, thrs: Iterable[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                base_cls: float = 0.05, iou_col: str = "iou_same") -> pd.DataFrame:
    """Figure 2: share of boxes (cls > ``base_cls``) with cls > t and with IoU > t, per t."""
    base = df[df["cls"] > base_cls]
    n = max(len(base), 1)
    return pd.DataFrame({"thr": list(thrs),
                         "cls_share": [float((base["cls"] > t).sum() / n) for t in thrs],
                         "iou_share": [float((base[iou_col] > t).sum() / n) for t in thrs]})


def rank_correlation(df: pd.DataFrame, score_col: str = "cls", iou_col: str = "iou_same") -> float:
    """Spearman rank correlation of a score and the IoU over the rows of ``df`` (NaN if < 2)."""
    if len(df) < 2:
        return float("nan")
    return float(df[score_col].rank().corr(df[iou_col].rank()))


def wrong_survivor_rate(pre_nms: pd.DataFrame, kept: pd.DataFrame, min_iou: float = 0.5) -> dict:
    """How often NMS keeps a box while a suppressed box on the same ground truth fits it better.

    For every kept box matched to a same-class ground truth with IoU >= ``min_iou``, look at
    the boxes NMS saw but did not keep (same image, label and ground truth); the kept box is a
    *wrong survivor* when one of them has a higher IoU.

    Args:
        pre_nms: the candidates NMS saw (``image_id``, ``level``, ``anchor``, ``label``,
            ``gt_same``, ``iou_same``).
        kept: the survivors, a subset of ``pre_nms`` rows (same key columns).
    Returns:
        ``{"kept": n, "wrong": k, "rate": k / n}`` (rate NaN when n = 0).
    """
    key = ["image_id", "level", "anchor", "label"]
    flagged = pre_nms.merge(kept[key].assign(_kept=True), on=key, how="left")
    suppressed = flagged[flagged["_kept"].isna() & (flagged["gt_same"] >= 0)]
    best_suppressed = suppressed.groupby(["image_id", "label", "gt_same"])["iou_same"].max()
    survivors = kept[(kept["gt_same"] >= 0) & (kept["iou_same"] >= min_iou)]
    if survivors.empty:
        return {"kept": 0, "wrong": 0, "rate": float("nan")}
    idx = pd.MultiIndex.from_frame(survivors[["image_id", "label", "gt_same"]])
    rival = best_suppressed.reindex(idx).to_numpy()
    wrong = int(np.nansum(rival > survivors["iou_same"].to_numpy()))
    return {"kept": len(survivors), "wrong": wrong, "rate": wrong / len(survivors)}


def oracle_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Candidates whose object confidence is replaced by the true IoU: re-scored, they give the
    upper bound of any quality branch under that fusion."""
    return candidates.assign(obj=candidates["iou_same"].astype(np.float32))


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, on: Sequence[str],
                       metrics: Sequence[str] = ("AP", "AP50", "AP75")) -> pd.DataFrame:
    """Join a regenerated table with the paper's CSV on ``on``; add ``{metric}_paper`` and
    ``{metric}_delta`` (ours − paper) columns. A ``seeds`` column and ``{metric}_sd`` columns
    (from :func:`analysis.seeds.mean_sd`) are carried along."""
    cols = [m for m in metrics if m in ours and m in paper]
    carried = (["seeds"] if "seeds" in ours else []) + \
        [c for m in cols for c in (m, f"{m}_sd") if c in ours]
    joined = ours[list(on) + carried].merge(paper[list(on) + cols], on=list(on), how="left",
                                            suffixes=("", "_paper"))
    for m in cols:
        joined[f"{m}_delta"] = joined[m] - joined[f"{m}_paper"]
    return joined


# ---------------------------------------------------------------- per-dump rows for over_seeds
# Each takes ``(model, dump)`` (an :class:`analysis.io.Dump`) so that
# :func:`analysis.seeds.over_seeds` can apply it to every seed.

def before_nms(candidates: pd.DataFrame, base_cls: float = 0.05) -> pd.DataFrame:
    """The pre-NMS boxes the paper counts: candidates with cls > ``base_cls``."""
    return candidates[candidates["cls"] > base_cls]


def dump_counts(model: str, dump, image_ids: Sequence[int]) -> pd.DataFrame:
    """:func:`count_table` of one dump for ``image_ids``."""
    return count_table(before_nms(dump.candidates), dump.detections, dump.images, image_ids=image_ids)


def dump_proportions(model: str, dump) -> pd.DataFrame:
    """:func:`proportions` before and after NMS, rows ``(stage, thr)``."""
    return pd.concat([proportions(before_nms(dump.candidates)).assign(stage="before NMS"),
                      proportions(dump.detections).assign(stage="after NMS")], ignore_index=True)


def dump_alignment(model: str, dump) -> dict:
    """Rank correlations with the IoU before / after NMS and the wrong-survivor rate of NMS
    under the fusion the model deploys."""
    from .rescore import deployed_fusion, inference_kwargs, nms_per_image, preselect

    f = deployed_fusion(dump.meta)
    kw = inference_kwargs(dump.meta)
    pre = preselect(dump.candidates, f["mode"], f["alpha"], f["thr"], kw["score_thr"],
                    kw["nms_pre"], kw["min_bbox_size"])
    ws = wrong_survivor_rate(pre, nms_per_image(pre, kw["nms_iou"], kw["max_per_img"]))
    return {"cls~IoU before NMS": rank_correlation(before_nms(dump.candidates)),
            "cls~IoU after NMS": rank_correlation(dump.detections),
            "score~IoU after NMS": rank_correlation(dump.detections, "score"),
            "kept (IoU>=0.5)": ws["kept"], "wrong survivors": ws["wrong"], "wrong-survivor rate": ws["rate"]}

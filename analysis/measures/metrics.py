"""Misalignment metrics on dump DataFrames (pure functions: DataFrame in → DataFrame/float out).

Column conventions follow ``retconf.dump``: ``cls`` raw classification score, ``obj`` object
confidence, ``score`` the score NMS ranked by, ``iou_same`` best IoU with a ground truth of the
same class, ``gt_same`` that ground truth's index (-1: none).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..geometry.boxes import box_iou_np
from ..geometry.matching import SIZES
from ..scoring.fusion import fuse_arrays

# COCO's value of a metric it cannot compute (APl with no large object in the val set).
COCO_UNDEFINED = -1.0

CLS_THRS: tuple[float, ...] = (0.05, 0.5, 0.6, 0.7, 0.8, 0.9)
IOU_THRS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


def count_table(before: pd.DataFrame, after: pd.DataFrame, images: pd.DataFrame,
                image_ids: Sequence[int] | None = None, cls_thrs: Iterable[float] = CLS_THRS,
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
    """Spearman rank correlation of a score and the IoU over the rows of ``df`` (NaN with fewer
    than 2 rows or a constant column): :func:`correlation`'s ``"spearman"``."""
    return correlation(df, score_col, iou_col)["spearman"]


BOX_COLUMNS = ["x1", "y1", "x2", "y2"]


def level_name(level: int) -> str:
    """A dump's pyramid level index as the reports name it: 0 -> "P3" (stride 8) … 4 -> "P7";
    a negative index (level unknown) -> "unknown"."""
    return f"P{int(level) + 3}" if int(level) >= 0 else "unknown"


def _kept_position(rows: pd.DataFrame, nms_kept: pd.DataFrame) -> np.ndarray:
    """float64[len(rows)]: each row's position in ``nms_kept`` by its candidate key (image,
    level, anchor, label; a key is one box), NaN for a row NMS did not keep."""
    key = ["image_id", "level", "anchor", "label"]
    positions = nms_kept[key].assign(_pos=np.arange(len(nms_kept))).drop_duplicates(key)
    return rows[key].reset_index(drop=True).merge(positions, on=key, how="left")["_pos"].to_numpy(np.float64)


def suppressor(pre_nms: pd.DataFrame, nms_kept: pd.DataFrame, nms_iou: float,
               among: np.ndarray | None = None) -> np.ndarray:
    """Which kept box suppressed each candidate, as greedy class-aware NMS decides it: the
    first box of ``nms_kept`` (in its order: by score, as NMS returns it) of the same image and
    label whose IoU with the candidate exceeds ``nms_iou``.

    Args:
        pre_nms: the candidates NMS saw (``image_id``, ``level``, ``anchor``, ``label``, box corners).
        nms_kept: NMS's output before any per-image cap, a subset of ``pre_nms`` rows, in NMS order.
        among: bool[len(pre_nms)], the candidates to look at (None: all); each candidate's
            suppressor is found on its own, so the others only cost time.
    Returns:
        int64[len(pre_nms)]: the row position in ``nms_kept`` of each candidate's suppressor; −1
        for kept candidates, for those no kept box overlaps (e.g. dropped by a cap before NMS)
        and for those not ``among``.
    """
    out = np.full(len(pre_nms), -1, dtype=np.int64)
    suppressed = np.isnan(_kept_position(pre_nms, nms_kept))
    cand = np.flatnonzero(suppressed if among is None else suppressed & among)
    if not len(cand) or nms_kept.empty:
        return out
    kb, cb = nms_kept[BOX_COLUMNS].to_numpy(np.float64), pre_nms[BOX_COLUMNS].to_numpy(np.float64)
    kept_groups = nms_kept.groupby(["image_id", "label"], sort=False).indices
    for (img, lab), rows in pre_nms.iloc[cand].groupby(["image_id", "label"], sort=False).indices.items():
        k = kept_groups.get((img, lab))
        if k is None:
            continue
        k = np.sort(k)  # NMS order within the group
        over = box_iou_np(cb[cand[rows]], kb[k]) > nms_iou
        first = over.argmax(axis=1)
        out[cand[rows]] = np.where(over.any(axis=1), k[first], -1)
    return out


# A suppressed rival must fit the ground truth better by at least this IoU to make a survivor
# "wrong": a rival better by any margin (0.501 against 0.500) says nothing about the ranking.
WRONG_SURVIVOR_MARGIN = 0.05


def wrong_survivors(pre_nms: pd.DataFrame, kept: pd.DataFrame, min_iou: float = 0.5,
                    margin: float = WRONG_SURVIVOR_MARGIN, nms_kept: pd.DataFrame | None = None,
                    nms_iou: float | None = None) -> pd.DataFrame:
    """The survivors :func:`wrong_survivor_rate` judges, one row each: the rows of ``kept``
    matched to a same-class ground truth with IoU >= ``min_iou``, with ``gap`` (the IoU by which
    their best suppressed rival beats them; NaN without a rival) and ``wrong`` (gap >=
    ``margin``). Arguments as :func:`wrong_survivor_rate`."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    nms_kept = kept if nms_kept is None else nms_kept
    group = ["image_id", "label", "gt_same"]
    has_gt = pre_nms["gt_same"].to_numpy() >= 0
    if nms_iou is not None:
        by = suppressor(pre_nms, nms_kept, nms_iou, among=has_gt)  # only these rivals count below
        best_suppressed = pre_nms.assign(_by=by)[(by >= 0) & has_gt].groupby([*group, "_by"])["iou_same"].max()
        survivors = kept.assign(_by=_kept_position(kept, nms_kept).astype(np.int64))  # kept ⊆ nms_kept
        group = [*group, "_by"]
    else:
        suppressed = np.isnan(_kept_position(pre_nms, nms_kept)) & has_gt
        best_suppressed = pre_nms[suppressed].groupby(group)["iou_same"].max()
        survivors = kept
    survivors = survivors[(survivors["gt_same"] >= 0) & (survivors["iou_same"] >= min_iou)]
    if survivors.empty:
        return survivors.assign(gap=np.zeros(0), wrong=np.zeros(0, bool))
    idx = pd.MultiIndex.from_frame(survivors[group])
    gap = best_suppressed.reindex(idx).to_numpy() - survivors["iou_same"].to_numpy()
    return survivors.assign(gap=gap, wrong=np.nan_to_num(gap, nan=-1.0) >= max(margin, 1e-12))


def wrong_survivor_rate(pre_nms: pd.DataFrame, kept: pd.DataFrame, min_iou: float = 0.5,
                        margin: float = WRONG_SURVIVOR_MARGIN, nms_kept: pd.DataFrame | None = None,
                        nms_iou: float | None = None) -> dict:
    """How often NMS keeps a box while a box it suppressed on the same ground truth fits better.

    For every kept box matched to a same-class ground truth with IoU >= ``min_iou``, look at
    the boxes NMS suppressed (same image, label and ground truth); the kept box is a *wrong
    survivor* when the best of them beats its IoU by at least ``margin``. Boxes that NMS kept
    but the per-image cap (``max_per_img``) then dropped were not suppressed and are no rivals:
    pass NMS's uncapped output as ``nms_kept``. With ``nms_iou`` (and box corners in the frames)
    a rival must have been suppressed by that very survivor (:func:`suppressor`), so a second,
    duplicate survivor on an object is not blamed for what the first one suppressed: ranking by
    the true IoU then scores near 0.

    Args:
        pre_nms: the candidates NMS saw (``image_id``, ``level``, ``anchor``, ``label``,
            ``gt_same``, ``iou_same``; box corners for ``nms_iou``).
        kept: the survivors, a subset of ``pre_nms`` rows (same key columns), in NMS order.
        min_iou: the IoU from which a survivor counts as well-localised.
        margin: the IoU by which a suppressed rival must beat the survivor (0: any margin, the
            counting of earlier versions).
        nms_kept: every box NMS kept before the per-image cap, in NMS order (default ``kept``).
        nms_iou: NMS's IoU threshold, to attribute each suppressed box to its suppressor.
    Returns:
        ``{"kept": n, "wrong": k, "rate": k / n, "gap": mean IoU by which the wrong survivors'
        best rivals beat them}`` (rate NaN without survivors, gap NaN without wrong survivors).
    """
    rows = wrong_survivors(pre_nms, kept, min_iou, margin, nms_kept, nms_iou)
    if rows.empty:
        return {"kept": 0, "wrong": 0, "rate": float("nan"), "gap": float("nan")}
    wrong = int(rows["wrong"].sum())
    return {"kept": len(rows), "wrong": wrong, "rate": wrong / len(rows),
            "gap": float(rows["gap"][rows["wrong"]].mean()) if wrong else float("nan")}


ORACLES: dict[str, str] = {"IoU oracle": "iou_any", "IoU + label oracle": "iou_same"}


def oracle_candidates(candidates: pd.DataFrame, kind: str = "IoU oracle") -> pd.DataFrame:
    """Candidates whose object confidence is replaced by a true IoU; re-scored, they bound what
    a quality branch could give under that fusion.

    - ``"IoU oracle"``: obj := ``iou_any`` (best IoU with any ground truth), what a perfect
      class-agnostic IoU predictor (RetinaNet-Conf's branch) could know: the ceiling of any
      quality branch.
    - ``"IoU + label oracle"``: obj := ``iou_same`` (best IoU with a ground truth of the pair's
      label); it also reveals whether the label is right, which no class-agnostic branch can.
    """
    if kind not in ORACLES:
        raise ValueError(f"oracle {kind!r} is not one of {list(ORACLES)}")
    return candidates.assign(obj=candidates[ORACLES[kind]].astype(np.float32))


# ------------------------------------------------- class-agnostic vs class-specific alignment
# COCO's object-size bins, applied to the box area of the ground truth a box overlaps most
# (``gt_area``); boxes overlapping no ground truth belong to no size bin.
# The edges are COCO's (:data:`analysis.geometry.matching.SIZES`), applied as [lo, hi).
SIZE_BINS: dict[str, tuple[float, float]] = {label: SIZES[size] for size, label in (
    ("small", "small (<32²)"), ("medium", "medium (32²–96²)"), ("large", "large (≥96²)"))}
POSITIVE_IOU = 0.5


def per_anchor(candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per anchor (image, level, anchor): the (anchor, label) pair with the highest
    ``cls`` — the view for class-agnostic scores (``obj`` is one number per anchor).

    Args:
        candidates: (anchor, label) pairs with ``image_id``, ``level``, ``anchor``, ``cls``.
    """
    key = ["image_id", "level", "anchor"]
    order = candidates.sort_values(key + ["cls"], ascending=[True, True, True, False], kind="stable")
    return order.drop_duplicates(key, keep="first").reset_index(drop=True)


def correlation(df: pd.DataFrame, score_col: str, iou_col: str) -> dict:
    """Spearman and Pearson correlation of a score and an IoU over the rows of ``df``
    (NaN with fewer than 2 rows or a constant column). Returns ``{"n", "spearman", "pearson"}``."""
    x, y = df[score_col].astype(float), df[iou_col].astype(float)
    if len(df) < 2 or x.nunique() < 2 or y.nunique() < 2:
        return {"n": len(df), "spearman": float("nan"), "pearson": float("nan")}
    return {"n": len(df), "spearman": float(x.rank().corr(y.rank())), "pearson": float(x.corr(y))}


def _groups(df: pd.DataFrame, by_level: bool) -> list[tuple[str, str, pd.DataFrame]]:
    """(group kind, group, rows): all rows, then per pyramid level (P3 = level 0) when the rows
    have one, then per object size (:data:`SIZE_BINS`)."""
    out = [("all", "all", df)]
    if by_level and "level" in df:
        out += [("level", level_name(lv), g) for lv, g in df.groupby("level", sort=True)]
    area = df["gt_area"]
    out += [("size", name, df[(area >= lo) & (area < hi)]) for name, (lo, hi) in SIZE_BINS.items()]
    return out


# (score, IoU it is measured against, view): a class-agnostic score against the class-agnostic
# IoU on one row per anchor; a class score against the same-class IoU on (anchor, label) pairs.
ALIGNMENT_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("obj", "iou_any", "per anchor"), ("cls", "iou_same", "per anchor"), ("cls", "iou_same", "per pair"))


def alignment_table(candidates: pd.DataFrame, detections: pd.DataFrame,
                    base_cls: float = 0.05) -> pd.DataFrame:
    """How well each score ranks localization quality, before and after NMS.

    Before NMS: candidates with cls > ``base_cls`` (:func:`before_nms`), in the views of
    :data:`ALIGNMENT_PAIRS`; after NMS: one row per detection, the same pairs plus ``score``
    (what NMS ranked by) against ``iou_same``. Each over all rows and over positives only
    (the IoU it is measured against ≥ 0.5: the task the quality branch is trained for), per
    pyramid level (before NMS) and per object size.

    Returns:
        rows ``stage, view, score, iou, subset, group_by, group, n, spearman, pearson``.
        Rows for ``obj`` are left out when it is NaN (no quality branch).
    """
    pre = before_nms(candidates, base_cls)
    views = {"per anchor": per_anchor(pre), "per pair": pre}
    sets = [("before NMS", views[view], s, iou, view) for s, iou, view in ALIGNMENT_PAIRS]
    sets += [("after NMS", detections, s, iou, "per detection")
             for s, iou in (("obj", "iou_any"), ("cls", "iou_same"), ("score", "iou_same"))]
    rows = []
    for stage, df, score, iou, view in sets:
        if score not in df or df[score].isna().all():
            continue
        for subset, rows_ in (("all", df), (f"positives (IoU≥{POSITIVE_IOU:g})", df[df[iou] >= POSITIVE_IOU])):
            for group_by, group, g in _groups(rows_, stage == "before NMS"):
                rows.append({"stage": stage, "view": view, "score": score, "iou": iou, "subset": subset,
                             "group_by": group_by, "group": group, **correlation(g, score, iou)})
    return pd.DataFrame(rows)


def population_alignment(pop: pd.DataFrame | None, fusion: dict | None = None) -> dict:
    """Spearman correlation of each score with the IoU it can know on a population chosen by
    the IoU alone (a dump's :attr:`analysis.inputs.io.Dump.iou_population`: one row per anchor whose box
    overlaps a ground truth enough, labelled with that ground truth's class, whatever its
    scores), so that neither score is favoured by how the rows were picked: ``cls`` against
    ``iou_same``, ``obj`` against ``iou_any`` (NaN without a quality score) and the ranking score
    of ``fusion`` (:func:`with_deployed_score`; None: ``cls``) against ``iou_same``, all on the same
    rows. All NaN when the dump recorded no such population.

    Returns:
        ``{"n", "cls~IoU", "obj~IoU", "ranking~IoU"}``.
    """
    nan = float("nan")
    if pop is None or pop.empty:
        return {"n": 0, "cls~IoU": nan, "obj~IoU": nan, "ranking~IoU": nan}
    ranked = with_deployed_score(pop.assign(obj=pop["obj"].fillna(1.0)),
                                 fusion or {"mode": "cls", "alpha": 0.0, "thr": 0.5})
    has_obj = pop["obj"].notna().any()
    return {"n": len(pop), "cls~IoU": rank_correlation(pop, "cls", "iou_same"),
            "obj~IoU": rank_correlation(pop, "obj", "iou_any") if has_obj else nan,
            "ranking~IoU": rank_correlation(ranked, "score", "iou_same")}


def obj_above(candidates: pd.DataFrame, thr: float = 0.5, base_cls: float = 0.05) -> dict:
    """Share of anchors (per-anchor view, cls > ``base_cls``) whose object confidence exceeds
    ``thr``: how many boxes the ``*_thr`` fusions of Table 4 can filter at all."""
    anchors = per_anchor(before_nms(candidates, base_cls))
    n = len(anchors)
    above = int((anchors["obj"] > thr).sum())
    return {"anchors": n, f"obj>{thr:g}": above, "share": above / n if n else float("nan")}


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, on: Sequence[str],
                       metrics: Sequence[str] = ("AP", "AP50", "AP75")) -> pd.DataFrame:
    """Join a regenerated table with the paper's CSV on ``on``; add ``{metric}_paper`` and
    ``{metric}_delta`` (ours − paper) columns. A ``seeds`` column and ``{metric}_sd`` columns
    (from :func:`analysis.measures.seeds.mean_sd`) are carried along."""
    cols = [m for m in metrics if m in ours and m in paper]
    carried = (["seeds"] if "seeds" in ours else []) + \
        [c for m in cols for c in (m, f"{m}_sd") if c in ours]
    joined = ours[list(on) + carried].merge(paper[list(on) + cols], on=list(on), how="left",
                                            suffixes=("", "_paper"))
    for m in cols:
        joined[f"{m}_delta"] = joined[m] - joined[f"{m}_paper"]
    return joined


# ---------------------------------------------------------------- selections and comparisons
# (the per-dump rows that :func:`analysis.measures.seeds.over_seeds` applies live in :mod:`analysis.studies.tables`)

def before_nms(candidates: pd.DataFrame, base_cls: float = 0.05) -> pd.DataFrame:
    """The pre-NMS boxes the paper counts: candidates with cls > ``base_cls``."""
    return candidates[candidates["cls"] > base_cls]


def with_deployed_score(candidates: pd.DataFrame, fusion: dict) -> pd.DataFrame:
    """Candidates with ``score``: the score NMS ranks them by under ``fusion`` (``mode``,
    ``alpha``, ``thr``, e.g. :func:`analysis.scoring.rescore.deployed_fusion` of their dump), as the
    detections of the dump carry it after NMS.

    Args:
        candidates: C (anchor, label) rows with ``cls`` and ``obj`` (NaN without a quality branch).
    Returns:
        the C rows with a ``score`` column (``cls`` itself for ``mode`` ``cls``).
    """

    cls, obj = candidates["cls"].to_numpy(dtype="float32"), candidates["obj"].to_numpy(dtype="float32")
    return candidates.assign(score=fuse_arrays(cls, obj, fusion["mode"], fusion["alpha"], fusion["thr"]))


def fusion_formula(fusion: dict) -> str:
    """The fused score of ``fusion`` (``mode``, ``alpha``, ``thr``) as text, e.g.
    ``obj^0.4·cls^0.6`` (see :mod:`analysis.scoring.fusion` for the modes)."""
    mode, alpha, thr = fusion["mode"], float(fusion["alpha"]), float(fusion["thr"])
    base = {"cls": "cls", "mul": "cls·obj", "geo": "sqrt(cls·obj)",
            "pow": f"obj^{alpha:g}·cls^{round(1 - alpha, 6):g}"}.get(mode.removesuffix("_thr"))
    if base is None:
        raise ValueError(f"fusion mode {mode!r} has no formula")
    return f"{base} where obj > {thr:g}" if mode.endswith("_thr") else base


def figure1_scores(fusion: dict) -> list[tuple[str, str]]:
    """The scores Figure 1 draws against IoU, as (column, axis label): ``cls``, and for a head
    that deploys a fusion also ``score``, the fused score NMS actually ranks by."""
    scores = [("cls", "cls (classification score)")]
    if fusion["mode"] != "cls":
        scores.append(("score", f"NMS score {fusion_formula(fusion)}"))
    return scores


def low_cls_share(candidates: pd.DataFrame, iou_thr: float = 0.5, cls_thr: float = 0.5,
                  base_cls: float = 0.05) -> dict:
    """The paper's opening observation: of the well-localized boxes before NMS ((anchor, label)
    pairs with cls > ``base_cls`` and same-class IoU ≥ ``iou_thr``), the share whose class
    score is below ``cls_thr``. Returns ``{"well-localized": n, "cls<0.5": k, "share": k/n}``."""
    good = before_nms(candidates, base_cls)
    good = good[good["iou_same"] >= iou_thr]
    n, low = len(good), int((good["cls"] < cls_thr).sum())
    return {"well-localized": n, f"cls<{cls_thr:g}": low, "share": low / n if n else float("nan")}


def count_shift(counts: pd.DataFrame, thr: float = 0.5, base_cls: float = 0.05) -> dict:
    """:func:`nms_shift` from a box-count table in the intro Table 1 layout (rows ``stage``,
    ``condition``; one column per image), e.g. the paper's own: per image the change through NMS
    of the share (of the boxes with cls > ``base_cls``) with IoU > ``thr`` and with cls > ``thr``,
    averaged over the images. Returns ``{"d_iou_share", "d_cls_share", "shift", "images"}``."""
    t = counts.set_index(["stage", "condition"])
    images = [c for c in t.columns if str(c).startswith("image")]
    t = t[images].astype(float)
    base = {s: t.loc[(s, f"cls>{base_cls:g}")] for s in ("before_nms", "after_nms")}
    d = {k: t.loc[("after_nms", f"{k}>{thr:g}")] / base["after_nms"]
         - t.loc[("before_nms", f"{k}>{thr:g}")] / base["before_nms"] for k in ("iou", "cls")}
    return {"d_iou_share": float(d["iou"].mean()), "d_cls_share": float(d["cls"].mean()),
            "shift": float((d["iou"] - d["cls"]).mean()), "images": len(images)}


def nms_shift(props: pd.DataFrame, thr: float = 0.5) -> pd.DataFrame:
    """Figure 2's point in one number per (seed, model): how the share of boxes with IoU > t
    changes through NMS minus how the share with cls > t changes (negative: NMS removes a
    larger share of well-localized than of confident boxes).

    Args:
        props: rows of :func:`analysis.studies.tables.dump_proportions` over seeds (``seed, model, stage, thr,
            cls_share, iou_share``).
    Returns:
        rows ``seed, model, d_iou_share, d_cls_share, shift``.
    """
    at = props[np.isclose(props["thr"], thr)]
    wide = at.pivot_table(index=["seed", "model"], columns="stage", values=["cls_share", "iou_share"], sort=False)
    out = pd.DataFrame({
        "d_iou_share": wide[("iou_share", "after NMS")] - wide[("iou_share", "before NMS")],
        "d_cls_share": wide[("cls_share", "after NMS")] - wide[("cls_share", "before NMS")]})
    out["shift"] = out["d_iou_share"] - out["d_cls_share"]
    return out.reset_index()


def image_shares(boxes: pd.DataFrame, thr: float = 0.5, base_cls: float = 0.05,
                 iou_col: str = "iou_same") -> pd.DataFrame:
    """Per image, of the boxes with cls > ``base_cls``, the share with IoU > ``thr`` (``iou``) and
    the share with cls > ``thr`` (``cls``).

    Args:
        boxes: rows with ``image_id``, ``cls`` and ``iou_col``.
    Returns:
        one row per image that has such a box (index ``image_id``), columns ``iou`` and ``cls``.
    """
    base = boxes[boxes["cls"] > base_cls]
    return pd.DataFrame({"iou": base[iou_col] > thr, "cls": base["cls"] > thr}).groupby(base["image_id"]).mean()


def per_image_shift(before: pd.DataFrame, after: pd.DataFrame, thr: float = 0.5, base_cls: float = 0.05,
                    iou_col: str = "iou_same") -> dict:
    """:func:`nms_shift` as the paper computes it from its intro Table 1: per image the change
    through NMS of the share (of the boxes with cls > ``base_cls``) with IoU > ``thr`` and with
    cls > ``thr``, then the mean over the images that have such boxes both before and after NMS.

    Args:
        before: pre-NMS rows (``image_id``, ``cls``, ``iou_col``).
        after: post-NMS rows, same columns.
    Returns:
        ``{"d_iou_share", "d_cls_share", "shift", "images"}`` (per-image means; NaN and 0 images
        when no image has boxes on both sides).
    """
    b, a = image_shares(before, thr, base_cls, iou_col), image_shares(after, thr, base_cls, iou_col)
    both = b.index.intersection(a.index)
    d = a.loc[both] - b.loc[both]
    if d.empty:
        return {"d_iou_share": float("nan"), "d_cls_share": float("nan"), "shift": float("nan"), "images": 0}
    return {"d_iou_share": float(d["iou"].mean()), "d_cls_share": float(d["cls"].mean()),
            "shift": float((d["iou"] - d["cls"]).mean()), "images": int(len(d))}


def gaps_to(per_seed: pd.DataFrame, paper: pd.DataFrame, metrics: Sequence[str], base: str = "retinanet",
            key: str = "model") -> pd.DataFrame:
    """Gaps between detectors, ours beside the paper's: for every ``key`` value other than
    ``base`` and every metric, ours as the mean ± sd over seeds of the paired per-seed
    difference to ``base``, the paper's as its one difference. A metric COCO leaves undefined
    for us (−1: no object of that size in the val set) is left out. The datasets differ, so the
    gaps (not the cells) are what can be compared.

    Args:
        per_seed: rows ``seed``, ``key`` and the metrics (ours, one row per seed and model).
        paper: the paper's table, one row per ``key`` value.
    Returns:
        rows ``comparison`` ("a − base"), ``metric``, ``seeds``, ``ours``, ``ours_sd``,
        ``paper``, ``same sign`` (whether our mean gap has the paper's sign).
    """
    rows = []
    paper = paper.set_index(key)
    for metric in metrics:
        if metric not in per_seed or metric not in paper:
            continue
        wide = per_seed.pivot_table(index="seed", columns=key, values=metric, aggfunc="first")
        if base not in wide or (wide < 0).any().any():  # COCO's -1: no object of that size
            continue
        for other in [m for m in wide.columns if m != base]:
            d = (wide[other] - wide[base]).dropna()
            both = other in paper.index and base in paper.index
            p = float(paper.loc[other, metric] - paper.loc[base, metric]) if both else float("nan")
            ours = float(d.mean()) if len(d) else float("nan")
            rows.append({"comparison": f"{other} − {base}", "metric": metric, "seeds": len(d), "ours": ours,
                         "ours_sd": float(d.std(ddof=1)) if len(d) > 1 else float("nan"), "paper": p,
                         "same sign": (bool(np.sign(ours) == np.sign(p))
                                       if np.isfinite(ours) and np.isfinite(p) else None)})
    return pd.DataFrame(rows, columns=["comparison", "metric", "seeds", "ours", "ours_sd", "paper", "same sign"])


def gap_grid(gaps: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`gaps_to` as a readable grid: one row per (comparison, source) — ``ours`` as
    "mean ± sd" (or the mean alone for one seed), ``paper`` — and one column per metric."""
    rows = []
    for comparison, g in gaps.groupby("comparison", sort=False):
        ours = {"comparison": comparison, "source": f"ours ({int(g['seeds'].max())} seeds)"}
        paper = {"comparison": comparison, "source": "paper"}
        for r in g.itertuples():
            sd = "" if not np.isfinite(r.ours_sd) else f" ± {r.ours_sd:.{digits}f}"
            ours[r.metric] = f"{r.ours:+.{digits}f}{sd}" if np.isfinite(r.ours) else "n/a"
            paper[r.metric] = f"{r.paper:+.{digits}f}" if np.isfinite(r.paper) else "n/a"
        rows += [ours, paper]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- quantities of single paper claims
# Each computes one registry row's quantity (analysis/paper/claims.csv) on one dump's frames; the
# dump wrappers that :func:`analysis.measures.seeds.over_seeds` applies are in :mod:`analysis.studies.tables`.

FIGURE1_IOU_SPLIT = 0.7  # the IoU at which the paper's Figure 1 text splits its boxes


def figure1_bands(candidates: pd.DataFrame, split: float = FIGURE1_IOU_SPLIT, base_cls: float = 0.05,
                  iou_col: str = "iou_same") -> dict:
    """The introduction's reading of Figure 1 on the pre-NMS boxes ((anchor, label) pairs with
    cls > ``base_cls``, pooled over images), split at IoU ``split`` (same-class IoU ``iou_col``).

    Args:
        candidates: rows with ``cls`` and ``iou_col``.
    Returns:
        ``{"low n"`` (boxes with IoU < split), ``"low 0.05<cls≤0.2"``, ``"low 0.2<cls≤0.4"``,
        ``"low cls>0.4"`` (shares of the low band), ``"high n"`` (IoU > split), ``"high cls<0.5"``
        (share of the high band), ``"median cls high"`` (IoU > split), ``"median cls not high"``
        (IoU ≤ split)``}``; a share or median of an empty band is NaN.
    """
    pre = before_nms(candidates, base_cls)
    iou, cls = pre[iou_col].to_numpy(np.float64), pre["cls"].to_numpy(np.float64)
    low, high = cls[iou < split], cls[iou > split]
    share = lambda mask, n: float(mask.sum() / n) if n else float("nan")  # noqa: E731
    median = lambda x: float(np.median(x)) if len(x) else float("nan")  # noqa: E731
    return {"low n": int(len(low)), f"low {base_cls:g}<cls≤0.2": share((low > base_cls) & (low <= 0.2), len(low)),
            "low 0.2<cls≤0.4": share((low > 0.2) & (low <= 0.4), len(low)), "low cls>0.4": share(low > 0.4, len(low)),
            "high n": int(len(high)), "high cls<0.5": share(high < 0.5, len(high)),
            "median cls high": median(high), "median cls not high": median(cls[iou <= split])}


def band_correlations(pop: pd.DataFrame, split: float = FIGURE1_IOU_SPLIT, score_col: str = "cls",
                      iou_col: str = "iou_same") -> dict:
    """Spearman ρ(``score_col``, ``iou_col``) within the two IoU bands of Figure 1: IoU < ``split``
    and IoU ≥ ``split``, on a population chosen by the IoU alone (one row per anchor).

    Returns:
        ``{"low n", "low ρ", "high n", "high ρ", "larger ρ"}``: ``larger ρ`` is the larger of the
        two, NaN when either band has no correlation (fewer than 2 rows or a constant column).
    """
    low, high = pop[pop[iou_col] < split], pop[pop[iou_col] >= split]
    rl, rh = correlation(low, score_col, iou_col)["spearman"], correlation(high, score_col, iou_col)["spearman"]
    return {"low n": len(low), "low ρ": rl, "high n": len(high), "high ρ": rh,
            "larger ρ": max(rl, rh) if np.isfinite(rl) and np.isfinite(rh) else float("nan")}


def per_image_share_gap(candidates: pd.DataFrame, thr: float = 0.5, base_cls: float = 0.05,
                        iou_col: str = "iou_same") -> dict:
    """Per image, of the pre-NMS boxes (cls > ``base_cls``), the share with cls > ``thr`` minus the
    share with IoU > ``thr``, averaged over the images that have such boxes.

    Args:
        candidates: rows with ``image_id``, ``cls`` and ``iou_col``.
    Returns:
        ``{"images", "cls share", "iou share", "gap"}`` (per-image means; NaN and 0 images when
        no image has a box).
    """
    s = image_shares(candidates, thr, base_cls, iou_col)
    if s.empty:
        return {"images": 0, "cls share": float("nan"), "iou share": float("nan"), "gap": float("nan")}
    return {"images": int(len(s)), "cls share": float(s["cls"].mean()), "iou share": float(s["iou"].mean()),
            "gap": float((s["cls"] - s["iou"]).mean())}


def credible_share(detections: pd.DataFrame, cls_thr: float = 0.5, iou_thr: float = 0.5) -> dict:
    """Of the detections with cls > ``cls_thr``, the share that match a ground truth of their
    label at IoU ≥ ``iou_thr`` (``gt_same`` ≥ 0 and ``iou_same`` ≥ ``iou_thr``), pooled.

    Returns:
        ``{"confident": n, "matched": k, "share": k / n}`` (share NaN without a confident one).
    """
    conf = detections[detections["cls"] > cls_thr]
    k = int(((conf["gt_same"] >= 0) & (conf["iou_same"] >= iou_thr)).sum())
    return {"confident": len(conf), "matched": k, "share": k / len(conf) if len(conf) else float("nan")}


def positives_comparison(candidates: pd.DataFrame, images: pd.DataFrame, thr: float = 0.5,
                         base_cls: float = 0.05, iou_col: str = "iou_same") -> dict:
    """The intro Table 1 comparison per image: pre-NMS boxes (cls > ``base_cls``) with cls >
    ``thr`` and with IoU > ``thr`` against the image's positive anchors (IoU > 0.5).

    Args:
        candidates: rows with ``image_id``, ``cls`` and ``iou_col``.
        images: one row per val image with ``image_id``, ``num_gt``, ``positive_anchors``.
    Returns:
        ``{"images with positives"`` (positive_anchors > 0), ``"cls boxes fewer"`` (of those, the
        images with fewer boxes with cls > thr than positives), ``"share cls fewer"``,
        ``"images with ground truth"`` (num_gt > 0; an image with nothing to localize has no
        box with IoU > thr and no positive), ``"iou boxes not more"`` (of those, the images
        whose boxes with IoU > thr do not outnumber the positives), ``"share iou not more"``
        ``}`` (shares NaN over no image).
    """
    pre = before_nms(candidates, base_cls)
    img = images.set_index("image_id")
    n_cls = (pre["cls"] > thr).groupby(pre["image_id"]).sum().reindex(img.index, fill_value=0)
    n_iou = (pre[iou_col] > thr).groupby(pre["image_id"]).sum().reindex(img.index, fill_value=0)
    pos = img["positive_anchors"]
    with_pos, with_gt = pos > 0, img["num_gt"] > 0
    fewer = int((n_cls[with_pos] < pos[with_pos]).sum())
    not_more = int((n_iou[with_gt] <= pos[with_gt]).sum())
    a, b = int(with_pos.sum()), int(with_gt.sum())
    return {"images with positives": a, "cls boxes fewer": fewer, "share cls fewer": fewer / a if a else float("nan"),
            "images with ground truth": b, "iou boxes not more": not_more,
            "share iou not more": not_more / b if b else float("nan")}


def positive_obj_share(pop: pd.DataFrame, thr: float = 0.5, iou_thr: float = 0.5) -> dict:
    """Of the anchors of a population (one row per anchor) whose IoU with any ground truth is ≥
    ``iou_thr``, the share with obj > ``thr``. Returns ``{"positives", "obj>thr", "share"}``
    (share NaN without a positive)."""
    pos = pop[pop["iou_any"] >= iou_thr]
    k = int((pos["obj"] > thr).sum())
    return {"positives": len(pos), f"obj>{thr:g}": k, "share": k / len(pos) if len(pos) else float("nan")}


def product_lift_share(pop: pd.DataFrame, alpha: float = 0.4, cls_thr: float = 0.5, iou_thr: float = 0.5) -> dict:
    """Of the anchors with cls < ``cls_thr`` and same-class IoU > ``iou_thr``, the share whose
    product obj^α·cls^(1−α) exceeds cls (in float64; the same as obj > cls for cls > 0).
    Returns ``{"anchors", "lifted", "share"}`` (share NaN without such an anchor)."""
    rows = pop[(pop["cls"] < cls_thr) & (pop["iou_same"] > iou_thr)]
    cls, obj = rows["cls"].to_numpy(np.float64), rows["obj"].to_numpy(np.float64)
    k = int((obj ** alpha * cls ** (1.0 - alpha) > cls).sum())
    return {"anchors": len(rows), "lifted": k, "share": k / len(rows) if len(rows) else float("nan")}


def mid_iou_obj_gap(pop: pd.DataFrame, lo: float = 0.5, hi: float = 0.75) -> dict:
    """Mean obj of the anchors with IoU (any ground truth) in [``lo``, ``hi``) minus that of those
    with IoU ≥ ``hi``. Returns ``{"mid n", "mid obj", "high n", "high obj", "gap"}`` (means NaN
    over no anchor)."""
    iou = pop["iou_any"]
    mid, high = pop.loc[(iou >= lo) & (iou < hi), "obj"], pop.loc[iou >= hi, "obj"]
    m, h = (float(x.mean()) if len(x) else float("nan") for x in (mid, high))
    return {"mid n": len(mid), "mid obj": m, "high n": len(high), "high obj": h, "gap": m - h}


def size_correlation_gap(pop: pd.DataFrame, score_col: str = "obj", iou_col: str = "iou_any") -> dict:
    """Spearman ρ(``score_col``, ``iou_col``) on the anchors of small objects minus that on
    medium ones (:data:`SIZE_BINS` on ``gt_area``, the box area of the ground truth the anchor
    overlaps most). Returns ``{"small n", "small ρ", "medium n", "medium ρ", "gap"}``."""
    out = {}
    for key, name in (("small", "small (<32²)"), ("medium", "medium (32²–96²)")):
        lo, hi = SIZE_BINS[name]
        c = correlation(pop[(pop["gt_area"] >= lo) & (pop["gt_area"] < hi)], score_col, iou_col)
        out[f"{key} n"], out[f"{key} ρ"] = c["n"], c["spearman"]
    return {**out, "gap": out["small ρ"] - out["medium ρ"]}


def negative_obj_share(candidates: pd.DataFrame, neg_iou: float = 0.4, thr: float = 0.5,
                       base_cls: float = 0.05) -> dict:
    """Of the negative anchors before NMS (one row per anchor, :func:`per_anchor`, of the pairs
    with cls > ``base_cls``; IoU < ``neg_iou`` with every ground truth), the share with obj >
    ``thr``. Returns ``{"negatives", "obj>thr", "share"}`` (share NaN without a negative)."""
    neg = per_anchor(before_nms(candidates, base_cls))
    neg = neg[neg["iou_any"] < neg_iou]
    k = int((neg["obj"] > thr).sum())
    return {"negatives": len(neg), f"obj>{thr:g}": k, "share": k / len(neg) if len(neg) else float("nan")}


def low_obj_share(detections: pd.DataFrame, thr: float = 0.5) -> dict:
    """Share of detections with obj ≤ ``thr``. Returns ``{"detections", "obj≤thr", "share"}``
    (share NaN without a detection)."""
    k = int((detections["obj"] <= thr).sum())
    n = len(detections)
    return {"detections": n, f"obj≤{thr:g}": k, "share": k / n if n else float("nan")}


def matched_mean_iou(detections: pd.DataFrame, min_iou: float = 0.5) -> dict:
    """Mean same-class IoU of the detections that match a ground truth of their label at IoU ≥
    ``min_iou`` (``gt_same`` ≥ 0), pooled. Returns ``{"matched", "mean IoU"}`` (NaN without one)."""
    m = detections[(detections["gt_same"] >= 0) & (detections["iou_same"] >= min_iou)]
    return {"matched": len(m), "mean IoU": float(m["iou_same"].mean()) if len(m) else float("nan")}




def alpha_gains(per_seed: pd.DataFrame, metrics: Sequence[str], low: float = 0.2, high: float = 0.4) -> pd.DataFrame:
    """Per seed and metric, m(α = ``high``) − m(α = ``low``) of one detector's α sweep; a metric
    COCO leaves undefined (−1) at either α on any seed is left out.

    Args:
        per_seed: rows ``seed``, ``alpha`` and the metric columns (one row per (seed, α)), e.g.
            :func:`analysis.studies.tables.alpha_rows` over seeds for one model.
    Returns:
        rows ``seed, metric, gain``.
    """
    at = per_seed[np.isclose(per_seed["alpha"], low) | np.isclose(per_seed["alpha"], high)]
    rows = []
    for m in [m for m in metrics if m in at and not (at[m] == COCO_UNDEFINED).any()]:
        for seed, g in at.groupby("seed", sort=True):
            v = {("high" if np.isclose(a, high) else "low"): float(x) for a, x in zip(g["alpha"], g[m])}
            rows.append({"seed": seed, "metric": m, "gain": v.get("high", np.nan) - v.get("low", np.nan)})
    return pd.DataFrame(rows, columns=["seed", "metric", "gain"])


def gain_summary(gains: pd.DataFrame, focus: str = "ARs") -> pd.DataFrame:
    """Per seed, the smallest gain over the metrics of :func:`alpha_gains` (``min gain``) and the
    gain of ``focus`` minus the largest gain of the other metrics (``focus margin``; NaN when
    ``focus`` or every other metric is missing).

    Returns:
        rows ``seed, metrics, min gain, focus margin``.
    """
    rows = []
    for seed, g in gains.groupby("seed", sort=True):
        by = dict(zip(g["metric"], g["gain"]))
        others = [v for k, v in by.items() if k != focus]
        rows.append({"seed": seed, "metrics": len(by), "min gain": min(by.values()) if by else float("nan"),
                     "focus margin": by[focus] - max(others) if focus in by and others else float("nan")})
    return pd.DataFrame(rows, columns=["seed", "metrics", "min gain", "focus margin"])

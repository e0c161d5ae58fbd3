"""Post-processing as data: the steps after the head (NMS kind and IoU threshold, class-aware or
class-agnostic, Soft-NMS, score voting, the per-image cap, the score threshold) as a frozen
:class:`PostProcess`, replayed offline on a dump's candidates with mmcv's own ops.

Glossary: C candidate rows (an (anchor, class) pair each), D detections, T score thresholds.

Replay = the ranking rule's selection (:func:`analysis.scoring.rescore.select_candidates`: fuse, keep
rank > ``score_thr``, top ``nms_pre`` per level) then mmcv's ``batched_nms`` with the rule's NMS
config on each image (:func:`analysis.scoring.rescore.nms_per_image`), then the top ``max_per_img``,
then (optionally) PAA's score voting. That is mmdet's ``BaseDenseHead._bbox_post_process``
step for step, so for every rule that ``test_cfg`` can express (:meth:`PostProcess.as_test_cfg`)
re-scoring a dump gives the detections live inference with that ``test_cfg`` gives
(tests/analysis/test_postprocess.py checks it per variant).

When the replay is not exact (:func:`exactness`): the dump holds, per level, the pairs the rules
of its candidate grid keep at *its* ``score_thr`` and ``nms_pre``. A rule with a lower
``score_thr`` or a larger ``nms_pre`` (e.g. Soft-NMS as often deployed, with a score threshold
near 0, where decayed boxes survive that the dump never kept), or a fusion outside the grid,
sees only part of what live inference would. With the dump's own ``score_thr`` and ``nms_pre``
Soft-NMS is exact: mmdet thresholds before NMS, so live Soft-NMS sees the same candidates.

DIoU-NMS is left out: neither mmcv 2.1 nor mmdet 3 has it (no live config to be exact against).
Gaussian Soft-NMS ignores ``iou_threshold`` (mmcv's ``softnms_cpu``: every overlap decays by
exp(−IoU²/σ)).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..geometry.matching import coco_match
from ..inputs.io import Dump, DumpShards, shards_of
from ..measures.coco import GroundTruth, cached_ground_truth, frame_stats
from ..measures.effects import delta_intervals, deltas_to_baseline
from ..measures.lrp import best_thresholds, olrp_per_class, olrp_summary, threshold_curves
from ..measures.metrics import fusion_formula
from ..measures.quality import dump_ground_truth
from ..measures.seeds import by_shard
from ..scoring.fusion import Fusion
from ..scoring.rescore import (
    DETECTION_COLUMNS,
    METADATA,
    deployed_rule,
    inference_kwargs,
    join_shards,
    nms_per_image,
    select_candidates,
)

NMS_KINDS: tuple[str, ...] = ("nms", "soft_nms_linear", "soft_nms_gaussian")
SOFT_METHODS = {"soft_nms_linear": "linear", "soft_nms_gaussian": "gaussian"}


@dataclass(frozen=True)
class PostProcess:
    """One post-processing rule (what mmdet's ``test_cfg`` sets after the head's scores).

    Attributes:
        kind: :data:`NMS_KINDS` — hard NMS, linear or Gaussian Soft-NMS (mmcv ``soft_nms``).
        iou_threshold: NMS / linear Soft-NMS overlap threshold (Gaussian ignores it).
        class_agnostic: one NMS over all classes (mmcv ``batched_nms``'s ``class_agnostic``).
        max_per_img: detections kept per image after NMS; None: no cap (no live config has that).
        score_thr: pairs with ranking score ≤ this are dropped before NMS; None: the dump's.
        nms_pre: pairs kept per level before NMS; None: the dump's.
        sigma, min_score: Soft-NMS parameters (mmcv's defaults 0.5 and 1e-3).
        score_voting: PAA's score voting of the kept boxes (:func:`analysis.scoring.rescore.vote_boxes`).
    """

    kind: str = "nms"
    iou_threshold: float = 0.5
    class_agnostic: bool = False
    max_per_img: int | None = 100
    score_thr: float | None = None
    nms_pre: int | None = None
    sigma: float = 0.5
    min_score: float = 1e-3
    score_voting: bool = False

    def __post_init__(self) -> None:
        if self.kind not in NMS_KINDS:
            raise ValueError(f"post-processing kind {self.kind!r} is not one of {NMS_KINDS} "
                             "(DIoU-NMS: neither mmcv nor mmdet has it)")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold={self.iou_threshold!r} must be in (0, 1]")
        if self.max_per_img is not None and (isinstance(self.max_per_img, bool) or self.max_per_img < 1):
            raise ValueError(f"max_per_img={self.max_per_img!r} must be a positive int or None")
        if self.score_thr is not None and not 0.0 <= self.score_thr < 1.0:
            raise ValueError(f"score_thr={self.score_thr!r} must be in [0, 1) or None")
        if self.sigma <= 0:
            raise ValueError(f"sigma={self.sigma!r} must be positive")
        if not 0.0 <= self.min_score < 1.0:
            raise ValueError(f"min_score={self.min_score!r} must be in [0, 1)")

    @property
    def label(self) -> str:
        """A short name for tables: ``nms 0.5``, ``soft-linear 0.5``, ``soft-gaussian σ0.5``,
        with ``agnostic``, ``+vote``, ``cap N`` / ``no cap``, ``thr s`` and ``pre k`` as set."""
        name = {"nms": f"nms {self.iou_threshold:g}", "soft_nms_linear": f"soft-linear {self.iou_threshold:g}",
                "soft_nms_gaussian": f"soft-gaussian σ{self.sigma:g}"}[self.kind]
        parts = [name]
        if self.class_agnostic:
            parts.insert(0, "agnostic")
        if self.score_voting:
            parts.append("+vote")
        if self.max_per_img != 100:
            parts.append("no cap" if self.max_per_img is None else f"cap {self.max_per_img}")
        if self.score_thr is not None:
            parts.append(f"thr {self.score_thr:g}")
        if self.nms_pre is not None:
            parts.append(f"pre {self.nms_pre}")
        return " ".join(parts)

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label}

    def nms_cfg(self) -> dict:
        """The ``nms`` dict of mmdet's ``test_cfg`` (what mmcv's ``batched_nms`` takes)."""
        cfg: dict = {"type": "nms" if self.kind == "nms" else "soft_nms", "iou_threshold": self.iou_threshold}
        if self.kind != "nms":
            cfg.update(sigma=self.sigma, min_score=self.min_score, method=SOFT_METHODS[self.kind])
        if self.class_agnostic:
            cfg["class_agnostic"] = True
        return cfg

    def settings(self, base: dict) -> dict:
        """:func:`analysis.scoring.rescore.rescore`-style keyword arguments: ``base`` (a dump's
        :func:`~analysis.scoring.rescore.inference_kwargs`) with this rule's fields."""
        out = {**base, "nms_cfg": self.nms_cfg(), "nms_iou": self.iou_threshold,
               "max_per_img": self.max_per_img, "score_voting": self.score_voting}
        if self.score_thr is not None:
            out["score_thr"] = self.score_thr
        if self.nms_pre is not None:
            out["nms_pre"] = self.nms_pre
        return out

    def as_test_cfg(self, base: dict, post_process: dict | None = None) -> dict | None:
        """mmdet's ``test_cfg`` for this rule on a head whose own ``test_cfg`` is ``base``
        (a dump's ``meta['test_cfg']``), or None where no ``test_cfg`` expresses it: score voting on
        a head without it (``post_process['score_voting']`` False: only PAA votes) or its absence on
        one with it, and no per-image cap (mmdet always slices ``[:max_per_img]``)."""
        voting = bool((post_process or {}).get("score_voting", False))
        if self.score_voting != voting or self.max_per_img is None:
            return None
        cfg = {**base, "nms": self.nms_cfg(), "max_per_img": self.max_per_img}
        if self.score_thr is not None:
            cfg["score_thr"] = self.score_thr
        if self.nms_pre is not None:
            cfg["nms_pre"] = self.nms_pre
        return cfg

    @classmethod
    def of_test_cfg(cls, test_cfg: dict, score_voting: bool = False) -> PostProcess:
        """The rule an mmdet ``test_cfg`` (e.g. a dump's ``meta['test_cfg']``) deploys."""
        nms = dict(test_cfg.get("nms") or {})
        kind = "nms" if nms.get("type", "nms") == "nms" else f"soft_nms_{nms.get('method', 'linear')}"
        return cls(kind=kind, iou_threshold=nms.get("iou_threshold", 0.5),
                   class_agnostic=bool(nms.get("class_agnostic", False)),
                   max_per_img=test_cfg.get("max_per_img", 100), sigma=nms.get("sigma", 0.5),
                   min_score=nms.get("min_score", 1e-3), score_voting=score_voting)


def deployed_postprocess(meta: dict) -> PostProcess:
    """The post-processing a dump's model deployed (its ``test_cfg`` and head)."""
    kw = inference_kwargs(meta)
    return PostProcess.of_test_cfg(meta["test_cfg"], kw["score_voting"])


def exactness(rule: PostProcess, meta: dict, fusion: Fusion | None = None) -> tuple[bool, str]:
    """Whether replaying ``rule`` (with ranking ``fusion``, default the deployed one) on a dump
    sees every candidate live inference would, and if not why (empty string when exact).

    Exact when the rule's ``score_thr`` is at least the dump's, its ``nms_pre`` at most the
    dump's (both positive) and ``fusion`` is one of the dump's candidate grid: then the rule's
    selection is a subset of what the dump kept for that fusion."""
    grid = meta.get("candidate_rule") or {}
    fusion = deployed_rule(meta) if fusion is None else fusion
    kw = inference_kwargs(meta)
    dump_thr = float(grid.get("score_thr", kw["score_thr"]))
    dump_pre = int(grid.get("nms_pre", kw["nms_pre"]))
    why = []
    thr = kw["score_thr"] if rule.score_thr is None else rule.score_thr
    if thr < dump_thr:
        why.append(f"score_thr {thr:g} is below the dump's {dump_thr:g}: pairs ranked in ({thr:g}, {dump_thr:g}] "
                   "are missing (Soft-NMS may keep such boxes live)")
    pre = kw["nms_pre"] if rule.nms_pre is None else rule.nms_pre
    if dump_pre > 0 and (pre <= 0 or pre > dump_pre):
        why.append(f"nms_pre {pre} exceeds the dump's {dump_pre}: a level's pairs beyond its top {dump_pre} "
                   "are missing")
    fusions = [Fusion.of(f) for f in grid.get("fusions", [])]
    if fusions and fusion not in fusions:
        why.append(f"fusion {fusion.as_dict()} is outside the dump's candidate grid")
    return not why, "; ".join(why)


def apply_rule(candidates: pd.DataFrame, rule: PostProcess, fusion: Fusion, base: dict) -> pd.DataFrame:
    """Detections of every image (one row each, ``score`` the score NMS returns) after ranking
    by ``fusion`` and post-processing by ``rule``; ``base``: the dump's
    :func:`~analysis.scoring.rescore.inference_kwargs` (what the rule leaves as the dump had it).
    The result's ``attrs['postprocess']`` records the rule, ``attrs['fusion']`` the ranking."""
    kw = rule.settings(base)
    pre = select_candidates(candidates, fusion, kw["score_thr"], kw["nms_pre"], kw["min_bbox_size"], kw["selection"])
    out = nms_per_image(pre, kw["nms_iou"], kw["max_per_img"], kw["score_voting"], kw["nms_cfg"])
    out.attrs.update(postprocess=rule.as_dict(), fusion=fusion.as_dict())
    return out


def dump_detections(dump: Dump, rule: PostProcess, fusion: Fusion | None = None) -> pd.DataFrame:
    """:func:`apply_rule` on a dump (``fusion`` default: the deployed ranking), with
    ``attrs['exact']`` and ``attrs['why']`` from :func:`exactness`."""
    fusion = deployed_rule(dump.meta, dump.meta_file) if fusion is None else fusion
    out = apply_rule(dump.candidates, rule, fusion, inference_kwargs(dump.meta))
    exact, why = exactness(rule, dump.meta, fusion)
    out.attrs.update(exact=exact, why=why)
    return out


# ---------------------------------------------------------------- the rule sets of the page and the grid

NMS_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
BASELINE = PostProcess()  # mmdet RetinaNet's: class-aware hard NMS at 0.5, 100 per image


def page_rules() -> list[PostProcess]:
    """The post-processing compared on the report page: hard NMS at each of
    :data:`NMS_THRESHOLDS`, linear and Gaussian Soft-NMS, class-agnostic NMS, score voting,
    no per-image cap and a higher score threshold (the others as :data:`BASELINE`)."""
    rules = [replace(BASELINE, iou_threshold=t) for t in NMS_THRESHOLDS]
    rules += [replace(BASELINE, kind="soft_nms_linear"), replace(BASELINE, kind="soft_nms_gaussian"),
              replace(BASELINE, class_agnostic=True), replace(BASELINE, score_voting=True),
              replace(BASELINE, max_per_img=None), replace(BASELINE, score_thr=0.3)]
    return rules


def grid_rules(thresholds: Sequence[float] = NMS_THRESHOLDS) -> list[PostProcess]:
    """The benchmark grid: every threshold × hard NMS, linear and Gaussian Soft-NMS (Gaussian
    ignores the threshold; it is run anyway so each cell costs what a grid cell costs)."""
    return [replace(BASELINE, kind=k, iou_threshold=t) for k in NMS_KINDS for t in thresholds]


# ---------------------------------------------------------------- tables (one dump → rows; rows over seeds → effects)

RANKINGS: tuple[str, ...] = ("cls", "deployed")  # NMS ranked by the class score, or by what the model deploys
RULE_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "oLRP", "after_nms", "best_F1", "best_LRP")


def rankings(meta: dict, where: str | Path = METADATA) -> dict[str, Fusion]:
    """The rankings a dump is replayed with: ``cls`` and, for a head with a quality score, the
    ``deployed`` fusion (a RetinaNet dump has ``cls`` only; :func:`~analysis.scoring.rescore.deployed_rule`
    refuses a legacy one, naming ``where``)."""
    out = {"cls": Fusion("cls")}
    if meta.get("fusion"):
        out["deployed"] = deployed_rule(meta, where)
    return out


def detection_metrics(dets: pd.DataFrame, coco: GroundTruth, gt: pd.DataFrame, num_images: int) -> dict:
    """AP, AP50, AP75 (COCO, :func:`analysis.measures.coco.frame_stats`: the values of
    :func:`~analysis.measures.coco.coco_ap`), oLRP (:mod:`analysis.measures.lrp`, per-class optimal
    thresholds), the after-NMS count per image and the best single score threshold by F1 and by
    mean LRP (:func:`analysis.measures.lrp.best_thresholds`) of one set of post-NMS detections.

    Args:
        dets: D detections (``image_id``, ``label``, ``score``, box corners).
        coco: the annotation file loaded once (:func:`analysis.measures.coco.dump_coco_truth`).
        gt: its ground truths as :func:`analysis.measures.quality.dump_ground_truth` gives them.
    """
    ap = frame_stats(coco, dets) if len(dets) else {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    matched = coco_match(dets, gt, "score", 0.5)
    lrp = olrp_summary(olrp_per_class(matched, 0.5))
    return {"AP": ap["AP"], "AP50": ap["AP50"], "AP75": ap["AP75"], "oLRP": lrp["oLRP"],
            "after_nms": len(dets) / max(num_images, 1), **best_thresholds(threshold_curves(matched, 0.5))}


def replay_by_shard(dump: Dump | DumpShards, fusions: Sequence[Fusion],
                    rules: Sequence[PostProcess]) -> dict[tuple[int, int], pd.DataFrame]:
    """The detections of every (fusion, rule) over a dump, replayed one shard at a time
    (:func:`sweep` on each shard's candidates): a shard holds whole images and the replay is per
    image, so each is what :func:`apply_rule` on the whole dump gives (rows in image order, as
    there), with the columns :data:`DETECTION_COLUMNS`. Memory holds one shard's candidates and
    the detections.

    Returns:
        ``{(fusion index, rule index): detections}``.
    """
    base = inference_kwargs(dump.meta)
    parts: dict[tuple[int, int], list[pd.DataFrame]] = {}
    for shard in shards_of(dump):
        for i, fusion in enumerate(fusions):
            for j, (_, _, dets) in enumerate(sweep(shard.candidates, [fusion], rules, base)):
                parts.setdefault((i, j), []).append(dets.loc[:, list(DETECTION_COLUMNS)])
        del shard
    return {key: join_shards(frames) for key, frames in parts.items()}


@by_shard
def dump_postprocess_rows(model: str, dump: Dump | DumpShards,
                          rules: Sequence[PostProcess] | None = None) -> pd.DataFrame:
    """:func:`detection_metrics` of one dump for every ranking of :func:`rankings` × every rule
    (default :func:`page_rules`), each row recording its rule (``rule`` = its label, and its
    fields), ranking (``ranking``, ``fusion``) and whether the replay is exact (``exact``,
    ``why``). For :func:`analysis.measures.seeds.over_seeds`, which gives it the dump shard by
    shard (:func:`replay_by_shard`)."""

    rules = page_rules() if rules is None else list(rules)
    ranks = rankings(dump.meta, dump.meta_file)
    coco = cached_ground_truth(dump.ann_file(), dump.meta["classes"], dump.meta.get("cat_ids"))
    gt = dump_ground_truth(dump)
    n_images = int(dump.meta["num_images"])
    replayed = replay_by_shard(dump, list(ranks.values()), rules)
    rows = []
    for i, (ranking, fusion) in enumerate(ranks.items()):
        for j, rule in enumerate(rules):
            exact, why = exactness(rule, dump.meta, fusion)
            rows.append({"ranking": ranking, "fusion": fusion_formula(fusion.as_dict()), "rule": rule.label,
                         **asdict(rule),
                         "exact": exact, "why": why,
                         **detection_metrics(replayed[i, j], coco, gt, n_images)})
    return pd.DataFrame(rows)


def rule_effects(per_seed: pd.DataFrame, metric: str = "AP", baseline: str = BASELINE.label) -> pd.DataFrame:
    """Per-seed paired differences ``metric(rule) − metric(baseline rule)`` within each
    (model, ranking), with their mean and 95 % paired t interval.

    Args:
        per_seed: rows of :func:`dump_postprocess_rows` over seeds (``seed``, ``model``).
    Returns:
        rows ``model, ranking, rule, seeds, mean, lo, hi, per_seed`` (the differences, seed order).
    """

    d = deltas_to_baseline(per_seed, "rule", metric, baseline, by=["model", "ranking"])
    out = delta_intervals(d, "rule", by=["model", "ranking"])
    listed = d.sort_values("seed").groupby(["model", "ranking", "rule"], sort=False)["delta"].agg(
        lambda v: ", ".join(f"{x:+.4f}" for x in v)).rename("per_seed").reset_index()
    return out.merge(listed, on=["model", "ranking", "rule"], how="left")


def ranking_gain(per_seed: pd.DataFrame, metric: str = "AP") -> pd.DataFrame:
    """The paper's lever under each post-processing: per seed, ``metric(deployed ranking) −
    metric(cls ranking)`` of every model with a quality score, for every rule.

    Returns:
        rows ``model, rule, seed, gain``.
    """
    wide = per_seed.pivot_table(index=["model", "rule", "seed"], columns="ranking", values=metric, aggfunc="first",
                                sort=False)
    if "deployed" not in wide:
        return pd.DataFrame(columns=["model", "rule", "seed", "gain"])
    gain = (wide["deployed"] - wide["cls"]).dropna().rename("gain").reset_index()
    return gain[["model", "rule", "seed", "gain"]]


def threshold_interaction(per_seed: pd.DataFrame, metric: str = "AP",
                          thresholds: Sequence[float] = NMS_THRESHOLDS, reference: float = 0.5) -> pd.DataFrame:
    """Quality-ranked NMS × NMS IoU threshold: per seed and model, the ranking gain
    (:func:`ranking_gain`) under hard class-aware NMS at each threshold, and its difference from
    the gain at ``reference`` (``interaction`` > 0: the fusion helps more at that threshold).

    Returns:
        rows ``model, iou_threshold, seed, gain, interaction``.
    """
    labels = {replace(BASELINE, iou_threshold=t).label: t for t in thresholds}
    g = ranking_gain(per_seed[per_seed["rule"].isin(labels)], metric)
    g["iou_threshold"] = g["rule"].map(labels)
    ref = g[g["iou_threshold"] == reference].set_index(["model", "seed"])["gain"]
    g["interaction"] = g["gain"].to_numpy() - ref.reindex(pd.MultiIndex.from_frame(g[["model", "seed"]])).to_numpy()
    return g[["model", "iou_threshold", "seed", "gain", "interaction"]].sort_values(
        ["model", "iou_threshold", "seed"], kind="stable").reset_index(drop=True)


def threshold_table(per_seed: pd.DataFrame, rule: str = BASELINE.label) -> pd.DataFrame:
    """The best single score threshold by F1 and by mean LRP under ``rule``, per model and
    ranking (before fusion: ``cls``; after: ``deployed``), one row per seed."""
    cols = ["seed", "model", "ranking", "best_F1", "F1_thr", "best_LRP", "LRP_thr", "oLRP"]
    return per_seed[per_seed["rule"] == rule][cols].reset_index(drop=True)


def difference(per_seed: pd.DataFrame, metric: str, a: dict, b: dict) -> pd.Series:
    """Per seed, ``metric`` of the row selected by ``a`` minus that of the row selected by ``b``
    (each a dict of column values, e.g. ``{"model": "retinanet", "ranking": "cls", "rule":
    "nms 0.5"}``); indexed by every seed of ``per_seed``, NaN where a side is missing."""
    def pick(sel: dict) -> pd.Series:
        mask = np.logical_and.reduce([per_seed[k].to_numpy() == v for k, v in sel.items()])
        return per_seed[mask].groupby("seed")[metric].first()

    seeds = sorted(per_seed["seed"].unique())
    return (pick(a).reindex(seeds) - pick(b).reindex(seeds)).rename(metric)


def sweep(candidates: pd.DataFrame, fusions: Sequence[Fusion], rules: Sequence[PostProcess], base: dict):
    """Every (fusion, rule) of a grid, as :func:`apply_rule` would give it, selecting the
    candidates once per (fusion, ``score_thr``, ``nms_pre``) and running only the NMS per rule.

    Yields:
        (fusion, rule, detections).
    """
    for fusion in fusions:
        selected: dict = {}
        for rule in rules:
            kw = rule.settings(base)
            key = (kw["score_thr"], kw["nms_pre"])
            if key not in selected:
                selected[key] = select_candidates(candidates, fusion, kw["score_thr"], kw["nms_pre"],
                                                  kw["min_bbox_size"], kw["selection"])
            out = nms_per_image(selected[key], kw["nms_iou"], kw["max_per_img"], kw["score_voting"], kw["nms_cfg"])
            out.attrs.update(postprocess=rule.as_dict(), fusion=fusion.as_dict())
            yield fusion, rule, out

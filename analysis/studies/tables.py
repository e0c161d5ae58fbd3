"""The rows of each paper table and figure, computed from one dump at a time: where "Table 4 is
computed" is answered here. Each ``*_rows``/``dump_*`` function takes ``(model, dump)`` (an
:class:`analysis.inputs.io.Dump`) so that :func:`analysis.measures.seeds.over_seeds` applies it to every seed;
the notebooks take mean ± sd over seeds and set the paper's CSV beside it.

==========================  =================================================  ==============
paper                       rows                                               notebook
==========================  =================================================  ==============
intro Table 1 (counts)      :func:`dump_counts`                                01
opening observation         :func:`dump_low_cls_share`                         01
Figure 2 (proportions)      :func:`dump_proportions`                           01
rank correlation, NMS       :func:`dump_alignment_table`, :func:`dump_alignment` 01
Table 1 (NMS on cls)        :func:`cls_only_ap`                                04
Tables 2 and 3 (losses)     :func:`loss_ablation_rows`                         03
Table 4 (fusion modes)      :func:`fusion_rows` (:func:`fusion_table`),        03
                            :func:`obj_share_rows`
Table 5 (α sweep)           :func:`alpha_rows` (:func:`alpha_sweep`,           02
                            :func:`alpha_table`)
Table 6 (deployed fusion)   :func:`deployed_ap` (the run's ``summary.json``    03, 04
                            holds the live numbers)
beyond the paper            :func:`oracle_rows`, :func:`order_rows`            03
==========================  =================================================  ==============

The computing lives in :mod:`analysis.measures.metrics` (counts, correlations), :mod:`analysis.scoring.rescore`
(fuse, select, NMS) and :mod:`analysis.measures.coco` (COCO AP).
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..inputs.io import Dump, DumpShards, shards_of
from ..inputs.runs import load_summary, paper_detectors
from ..measures.bootstrap import match_all, paired_bootstrap, spread_sources
from ..measures.coco import coco_ap, dump_coco_ap
from ..measures.metrics import (
    ORACLES,
    WRONG_SURVIVOR_MARGIN,
    alignment_table,
    band_correlations,
    before_nms,
    correlation,
    count_table,
    credible_share,
    figure1_bands,
    low_cls_share,
    low_obj_share,
    matched_mean_iou,
    mid_iou_obj_gap,
    negative_obj_share,
    nms_shift,
    obj_above,
    oracle_candidates,
    per_anchor,
    per_image_share_gap,
    per_image_shift,
    population_alignment,
    positive_obj_share,
    positives_comparison,
    product_lift_share,
    proportions,
    rank_correlation,
    size_correlation_gap,
    wrong_survivor_rate,
)
from ..measures.quality import dump_ground_truth
from ..measures.seeds import by_shard, interval, load_seed_dump, over_seeds, run_seeds, seeds_to_resolve
from ..paper.ablation_tables import TABLE3, TABLE_ROWS
from ..scoring.fusion import ALPHA_GRID, TABLE4_RULES, Fusion
from ..scoring.rescore import (
    DETECTION_COLUMNS,
    deployed_fusion,
    deployed_rule,
    inference_kwargs,
    join_shards,
    nms_per_image,
    rescore,
    select_candidates,
)

# The metric columns each table shows (names of analysis.measures.coco.COCO_METRICS).
REPORT_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "AR")  # our sweeps and ablations
TABLE1_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "ARs", "ARm", "ARl")
TABLE4_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR")
HEADLINE_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75")  # Table 5's columns, paired differences
TABLE6_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl")


# ---------------------------------------------------------------- one dump, one fusion: COCO AP

def dump_ap(dump: Dump, mode: str, alpha: float, thr: float = 0.5, order: str = "before_topk",
            candidates: pd.DataFrame | None = None) -> dict:
    """COCO metrics of one dump re-scored with one fusion under the dump's own inference
    settings (``candidates`` replaces the dump's, e.g. by :func:`analysis.measures.metrics.oracle_candidates`)."""
    cands = dump.candidates if candidates is None else candidates
    dets = rescore(cands, mode, alpha, thr, order=order, **inference_kwargs(dump.meta))
    return dump_coco_ap(dump, dets)


# ---------------------------------------------------------------- intro Table 1, Figure 2, correlations

# Two ways to count boxes before and after NMS (say which on every table):
# - "deployed": what mmdet's pipeline does — before NMS the dump's candidates with cls > 0.05
#   (at most ``nms_pre`` per level and rule), after NMS the detections the model returns (ranked by
#   its deployed score, at most ``max_per_img`` per image);
# - "paper": the paper's counting (intro Table 1, Figure 2) — one selection rule for every detector
#   (cls > 0.05, no per-level top-k) and NMS ranked by cls without the per-image cap (up to 13,480
#   boxes before and 836 after NMS in one of its images).
PROTOCOLS: tuple[str, ...] = ("deployed", "paper")
PAPER_BASE_CLS = 0.05


def paper_after_nms(dump: Dump) -> pd.DataFrame:
    """The paper's "after NMS": every candidate with cls > 0.05 (no per-level top-k), NMS ranked
    by cls at the dump's IoU threshold, no per-image cap. Exact on the levels where the dump holds
    fewer than ``nms_pre`` such pairs (:func:`paper_protocol_truncated` counts the others)."""
    kw = inference_kwargs(dump.meta)
    pre = select_candidates(before_nms(dump.candidates, PAPER_BASE_CLS), Fusion("cls"), PAPER_BASE_CLS,
                            len(dump.candidates) + 1, -1, "pairs")
    return nms_per_image(pre, kw["nms_iou"], None)


def paper_protocol_truncated(dump: Dump) -> int:
    """(image, level) groups where the dump holds ``nms_pre`` or more pairs with cls > 0.05:
    there the per-level top-k may have cut pairs the paper's protocol would count (0: exact)."""
    nms_pre = inference_kwargs(dump.meta)["nms_pre"]
    if nms_pre is None or nms_pre < 0:
        return 0
    sizes = before_nms(dump.candidates, PAPER_BASE_CLS).groupby(["image_id", "level"]).size()
    return int((sizes >= nms_pre).sum())


def after_nms(dump: Dump, protocol: str = "deployed") -> pd.DataFrame:
    """The post-NMS boxes under ``protocol`` (:data:`PROTOCOLS`)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return dump.detections if protocol == "deployed" else paper_after_nms(dump)


def dump_counts(model: str, dump: Dump, image_ids: Sequence[int], protocol: str = "deployed") -> pd.DataFrame:
    """:func:`count_table` of one dump for ``image_ids`` under ``protocol`` (column ``protocol``)."""
    return count_table(before_nms(dump.candidates), after_nms(dump, protocol), dump.images,
                       image_ids=image_ids).assign(protocol=protocol)


def dump_low_cls_share(model: str, dump: Dump) -> dict:
    """:func:`low_cls_share` of one dump (for ``over_seeds``)."""
    return low_cls_share(dump.candidates)


def dump_proportions(model: str, dump: Dump, protocol: str = "deployed") -> pd.DataFrame:
    """:func:`proportions` before and after NMS under ``protocol``, rows ``(stage, thr)``."""
    return pd.concat([proportions(before_nms(dump.candidates)).assign(stage="before NMS"),
                      proportions(after_nms(dump, protocol)).assign(stage="after NMS")],
                     ignore_index=True).assign(protocol=protocol)


def dump_image_shift(model: str, dump: Dump, protocol: str = "paper") -> dict:
    """:func:`analysis.measures.metrics.per_image_shift` of one dump under ``protocol`` (the paper's
    per-image mean of the NMS shift), with the pooled shift beside it (``pooled_shift``: the
    shares over all boxes of the set, as :func:`dump_proportions` counts them)."""
    before, after = before_nms(dump.candidates), after_nms(dump, protocol)
    pooled = nms_shift(pd.concat([proportions(before, (0.5,)).assign(stage="before NMS"),
                                  proportions(after, (0.5,)).assign(stage="after NMS")]).assign(seed=0, model=model))
    return {**per_image_shift(before, after), "pooled_shift": float(pooled["shift"].iloc[0]), "protocol": protocol}


def dump_alignment_table(model: str, dump: Dump) -> pd.DataFrame:
    """:func:`alignment_table` of one dump (for ``over_seeds``)."""
    return alignment_table(dump.candidates, dump.detections)


def deployed_nms(dump: Dump) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, float]:
    """NMS under the ranking rule the dump's model deploys, with the dump's own inference
    settings: (the candidates NMS saw, its survivors after the per-image cap, its survivors
    before it, the NMS IoU threshold). Survivors are NMS's: before any score voting moves them."""
    return nms_under(dump, deployed_rule(dump.meta, dump.meta_file))


def nms_under(dump: Dump, rule: Fusion) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, float]:
    """:func:`deployed_nms` with NMS ranked by ``rule`` instead of the deployed one, under the
    dump's own inference settings: (the candidates NMS saw, its survivors after the per-image
    cap, its survivors before it, the NMS IoU threshold)."""
    kw = inference_kwargs(dump.meta)
    pre = select_candidates(dump.candidates, rule, kw["score_thr"], kw["nms_pre"], kw["min_bbox_size"], kw["selection"])
    uncapped = nms_per_image(pre, kw["nms_iou"], None)
    kept = uncapped if kw["max_per_img"] is None else \
        uncapped.groupby("image_id", sort=False).head(kw["max_per_img"])  # NMS's order: by score
    return pre, kept, uncapped, kw["nms_iou"]


def dump_wrong_survivors(dump: Dump, margin: float = WRONG_SURVIVOR_MARGIN) -> dict:
    """:func:`analysis.measures.metrics.wrong_survivor_rate` of NMS under the ranking rule the dump's
    model deploys (:func:`deployed_nms`). Only NMS's suppressions count: boxes the per-image cap
    drops are no rivals."""
    pre, kept, uncapped, nms_iou = deployed_nms(dump)
    return wrong_survivor_rate(pre, kept, margin=margin, nms_kept=uncapped, nms_iou=nms_iou)


def dump_population_alignment(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.population_alignment` of one dump (its IoU-chosen population,
    ranking by the fusion it deploys)."""
    return population_alignment(dump.iou_population, deployed_fusion(dump.meta, dump.meta_file))


def dump_alignment(model: str, dump: Dump) -> dict:
    """Headline Spearman correlations (the full table: :func:`dump_alignment_table`) and the
    wrong-survivor rate of NMS under the fusion the model deploys. ``obj`` is NaN for a head
    without a quality branch."""
    ws = dump_wrong_survivors(dump)
    pre_nms = before_nms(dump.candidates)
    return {"cls~IoU_same per pair, before NMS": rank_correlation(pre_nms),
            "obj~IoU_any per anchor, before NMS": rank_correlation(per_anchor(pre_nms), "obj", "iou_any"),
            "cls~IoU_same after NMS": rank_correlation(dump.detections),
            "score~IoU_same after NMS": rank_correlation(dump.detections, "score"),
            "kept (IoU>=0.5)": ws["kept"], "wrong survivors": ws["wrong"], "wrong-survivor rate": ws["rate"],
            "wrong survivors' IoU gap": ws["gap"]}


# ---------------------------------------------------------------- Table 1: NMS on cls alone

def cls_only_ap(model: str, dump: Dump) -> dict:
    """COCO metrics of one dump with NMS ranked by the classification score alone (the
    paper's Table 1 protocol; plain RetinaNet deploys exactly this)."""
    return dump_ap(dump, "cls", 0.0)


# ---------------------------------------------------------------- Tables 2 and 3: quality losses

def loss_ablation_rows(model: str, dump: Dump) -> list[dict]:
    """Tables 2 and 3 rows that one ``retconf reproduce --full`` model provides.

    Table 2 scores with the classification only (``cls``); Table 3 with the product at α 0.4,
    for the rows the paper has there (CE and CE^w 1e-4). ``model`` is a name from
    :data:`analysis.paper.ablation_tables.TABLE_ROWS` (``retinanet_conf`` is the CE row).

    Returns:
        dicts with ``table``, ``loss``, ``alpha`` and the COCO metrics of :func:`coco_ap`.
    """
    rows = []
    for loss in (row for row, m in TABLE_ROWS.items() if m == model):
        rows.append({"table": "table2", "loss": loss, "alpha": 0.0, **dump_ap(dump, "cls", 0.0)})
        if loss in TABLE3:
            alpha = TABLE3[loss]["model.bbox_head.fusion.alpha"]
            rows.append({"table": "table3", "loss": loss, "alpha": alpha, **dump_ap(dump, "pow", alpha)})
    return rows


# ---------------------------------------------------------------- Table 4: fusion modes

# Table 4 rows: paper label -> (mode, alpha). The filtered product is exact on dumps whose
# candidate grid holds it (analysis.scoring.fusion.fusion_grid), otherwise exact only where a level keeps
# fewer than nms_pre pairs.
TABLE4_FUSIONS = {label: (f.mode, f.alpha) for label, f in TABLE4_RULES.items()}


def fusion_table(candidates: pd.DataFrame, ann_file: str, classes: list[str], thr: float = 0.5,
                 fusions: dict = TABLE4_FUSIONS, cat_ids: Sequence[int] | None = None,
                 **kwargs) -> pd.DataFrame:
    """AP of each fusion mode on one dump (Table 4 layout: one row per fusion); labels map to
    categories as in :func:`coco_ap`."""
    rows = []
    for label, (mode, alpha) in fusions.items():
        dets = rescore(candidates, mode, alpha, thr, **kwargs)
        rows.append({"fusion": label, **coco_ap(dets, ann_file, classes, cat_ids)})
    return pd.DataFrame(rows)


def fusion_rows(model: str, dump: Dump) -> pd.DataFrame:
    """:func:`fusion_table` of one dump with its own inference settings (for ``over_seeds``)."""
    return fusion_table(dump.candidates, dump.ann_file(), dump.meta["classes"],
                        cat_ids=dump.meta.get("cat_ids"), **inference_kwargs(dump.meta))


def obj_share_rows(model: str, dump: Dump, thr: float = 0.5) -> dict:
    """:func:`analysis.measures.metrics.obj_above` of one dump at the ``*_thr`` fusions' threshold."""
    return obj_above(dump.candidates, thr)


# ---------------------------------------------------------------- Table 5: the α sweep

ALPHAS: tuple[float, ...] = ALPHA_GRID  # the dump's grid: every α of it re-scores exactly


def alpha_sweep(candidates: pd.DataFrame, ann_file: str, alphas: list[float], classes: list[str],
                cat_ids: Sequence[int] | None = None, **kwargs) -> pd.DataFrame:
    """AP for each α of the ``pow`` fusion (Table 5 layout: one row per α); labels map to
    categories as in :func:`coco_ap`."""
    rows = []
    for a in alphas:
        rows.append({"alpha": a, **coco_ap(rescore(candidates, "pow", a, **kwargs), ann_file, classes, cat_ids)})
    return pd.DataFrame(rows)


def alpha_table(dumps: dict, alphas: Sequence[float] = ALPHAS) -> pd.DataFrame:
    """Table 5 layout for several quality heads: rows (alpha, model) as in the paper's CSV.

    Args:
        dumps: model name -> :class:`analysis.inputs.io.Dump` (each re-scored with its own settings).
    """
    parts = [alpha_rows(name, d, alphas).assign(model=name) for name, d in dumps.items()]
    table = pd.concat(parts, ignore_index=True)
    cols = ["alpha", "model"] + [c for c in table.columns if c not in ("alpha", "model")]
    return table[cols].sort_values(["alpha", "model"], kind="stable").reset_index(drop=True)


@by_shard
def alpha_rows(model: str, dump: Dump | DumpShards, alphas: Sequence[float] = ALPHAS) -> pd.DataFrame:
    """:func:`alpha_sweep` of one dump with its own inference settings (for ``over_seeds``, which
    gives it the dump shard by shard: each α's detections are re-scored per shard and joined in
    image order, :func:`analysis.scoring.rescore.join_shards`, the rows the whole dump gives)."""
    kw = inference_kwargs(dump.meta)
    parts: dict[float, list[pd.DataFrame]] = {a: [] for a in alphas}
    for shard in shards_of(dump):
        for a in alphas:
            parts[a].append(rescore(shard.candidates, "pow", a, **kw).loc[:, list(DETECTION_COLUMNS)])
        del shard
    ann, classes, cat_ids = dump.ann_file(), dump.meta["classes"], dump.meta.get("cat_ids")
    return pd.DataFrame([{"alpha": a, **coco_ap(join_shards(parts.pop(a)), ann, classes, cat_ids)} for a in alphas])


# ---------------------------------------------------------------- Table 6 and the target-gradient switch

def live_ap(model: str, dump: Dump) -> dict:
    """COCO metrics of the dump's own detections: what live inference returned for each image
    (batch 1, float32). The one source of a detector's AP in the reports; mmdet's validation at
    the end of training (``summary.json``) batches and pads images and can differ in the third
    decimal."""
    return dump_coco_ap(dump, dump.detections)


def deployed_ap(model: str, dump: Dump) -> dict:
    """COCO metrics of a dump re-scored with the ranking rule its model deploys (fusion, and
    whether it is applied before or after the per-level top-k)."""
    f = deployed_fusion(dump.meta, dump.meta_file)
    return dump_ap(dump, f["mode"], f["alpha"], f["thr"], order=f["order"])


# ---------------------------------------------------------------- beyond the paper: oracles, fusion order

ORACLE_ALPHAS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.9)


def oracle_rows(model: str, dump: Dump, alphas: Sequence[float] = ORACLE_ALPHAS) -> list[dict]:
    """AP of the product fusion with the predicted confidence and with the two oracles of
    :func:`analysis.measures.metrics.oracle_candidates` (the IoU oracle, the ceiling of a class-agnostic
    branch, and the IoU + label oracle, which also knows whether the label is right).

    Approximate for the oracles: the dump holds the candidates that the *predicted* obj's
    fusions keep; pairs that only an oracle would lift above ``score_thr`` are missing."""
    oracles = {name: oracle_candidates(dump.candidates, name) for name in ORACLES}
    return [{"alpha": a, "AP predicted obj": dump_ap(dump, "pow", a)["AP"],
             **{f"AP {name}": dump_ap(dump, "pow", a, candidates=c)["AP"] for name, c in oracles.items()}}
            for a in alphas]


def order_rows(model: str, dump: Dump, alpha: float = 0.4) -> list[dict]:
    """AP of the product fusion fused before top-k (this project's default) and after it
    (mmdet's order, as the original code effectively did), from one dump."""
    return [{"order": order, **dump_ap(dump, "pow", alpha, order=order)}
            for order in ("before_topk", "after_topk")]


# ---------------------------------------------------------------- where a difference's spread comes from

def difference_sources(run_dir: str, pairs: Sequence[tuple[str, str]], resamples: int = 200) -> pd.DataFrame:
    """Per pair ``(a, b)``: AP(a) − AP(b) of the dumps' detections on every seed of the run, its
    paired image-bootstrap sd on each seed (``resamples`` draws of the validation images), and
    :func:`analysis.measures.bootstrap.spread_sources` over the seeds (evaluation sampling vs training
    noise; the seeds that would give a ±0.01 half-width or resolve the observed mean).

    Returns:
        one row per pair: ``pair``, ``per_seed`` (the differences, seed order) and the keys of
        :func:`~analysis.measures.bootstrap.spread_sources`.
    """

    models = list(dict.fromkeys(m for p in pairs for m in p))
    per: dict[tuple[str, str], list[tuple[float, float]]] = {p: [] for p in pairs}
    for seed in run_seeds(run_dir):
        matched = {}
        for m in models:
            dump = load_seed_dump(run_dir, seed, m)
            matched[m] = match_all(dump.detections, dump_ground_truth(dump))
        for a, b in pairs:
            bs = paired_bootstrap(matched[a], matched[b], resamples=resamples, seed=int(seed))
            per[(a, b)].append((bs["delta"], bs["sd"]))
    rows = []
    for (a, b), vals in per.items():
        d, s = [v[0] for v in vals], [v[1] for v in vals]
        rows.append({"pair": f"{a} − {b}", "per_seed": ", ".join(f"{v:+.4f}" for v in d), **spread_sources(d, s)})
    return pd.DataFrame(rows)


def headline(run_dir: str, base: str = "retinanet", models: Sequence[str] | None = None) -> list[dict]:
    """The numbers a reader of a run would quote, each with what the run can resolve: every
    paper detector's AP (its dump's detections, deployed ranking) as mean ± sd over seeds, and
    each detector's paired AP difference to ``base`` with its 95 % paired half-width and the
    seeds that would resolve it at the measured spread.

    Returns:
        rows ``{"what", "mean", "sd", "seeds", "half_width", "seeds_to_resolve", "per_seed"}``
        (``half_width`` / ``seeds_to_resolve`` NaN for an AP level or below two seeds).
        ``models``: the detectors (default: the run's paper detectors).
    """
    import numpy as np


    models = list(models) if models is not None else paper_detectors(load_summary(run_dir))
    if not models:
        return []
    ap = over_seeds(run_dir, models, live_ap).pivot(index="seed", columns="model", values="AP")
    rows = []
    for m in models:
        mean, sd, _, n = interval(list(ap[m]))
        rows.append({"what": f"AP {m}", "mean": mean, "sd": sd, "seeds": n, "half_width": float("nan"),
                     "seeds_to_resolve": float("nan"), "per_seed": list(ap[m])})
    if base in ap:
        for m in [m for m in models if m != base]:
            d = list(ap[m] - ap[base])
            mean, sd, half, n = interval(d)
            need = seeds_to_resolve(mean, sd) if n >= 2 and np.isfinite(sd) and abs(mean) <= half else float("nan")
            rows.append({"what": f"AP {m} − {base}", "mean": mean, "sd": sd, "seeds": n, "half_width": half,
                         "seeds_to_resolve": need, "per_seed": d})
    return rows


# ---------------------------------------------------------------- quantities of single paper claims
# (model, dump) wrappers of the claim quantities of :mod:`analysis.measures.metrics` for ``over_seeds``.

def dump_figure1_bands(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.figure1_bands` of one dump's pre-NMS boxes (cls > 0.05)."""
    return figure1_bands(dump.candidates)


def dump_share_gap(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.per_image_share_gap` of one dump's pre-NMS boxes (cls > 0.05)."""
    return per_image_share_gap(dump.candidates)


def dump_credible_share(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.credible_share` of one dump's own detections (its deployed ranking,
    at most ``max_per_img`` per image)."""
    return credible_share(dump.detections)


def dump_positives_comparison(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.positives_comparison` of one dump (pre-NMS boxes with cls > 0.05
    against each val image's positive anchors)."""
    return positives_comparison(dump.candidates, dump.images)


def _population(dump: Dump) -> pd.DataFrame:
    """The dump's IoU-chosen population, or an empty frame of its candidate columns when it
    recorded none."""
    pop = dump.iou_population
    return dump.candidates.iloc[:0] if pop is None else pop


def dump_population_claims(model: str, dump: Dump) -> dict:
    """The claim quantities measured on the dump's population chosen by the IoU alone (one row
    per anchor with IoU ≥ 0.3 with a ground truth, whatever its scores; all NaN without one):

    - ``cls band ρ``: :func:`analysis.measures.metrics.band_correlations` of cls with the same-class IoU,
      the larger of the two bands' ρ (also ``cls ρ IoU<0.7``, ``cls ρ IoU≥0.7``);
    - ``ρ(cls, obj)``: Spearman between the two scores of the same anchors;
    - ``positive obj>0.5``: :func:`analysis.measures.metrics.positive_obj_share` (IoU any ≥ 0.5);
    - ``lifted by obj^0.4·cls^0.6``: :func:`analysis.measures.metrics.product_lift_share` (cls < 0.5, IoU > 0.5);
    - ``mid − high IoU obj``: :func:`analysis.measures.metrics.mid_iou_obj_gap` ([0.5, 0.75) against ≥ 0.75);
    - ``small − medium ρ(obj, IoU)``: :func:`analysis.measures.metrics.size_correlation_gap`.
    """

    pop = _population(dump)
    bands = band_correlations(pop)
    nan = float("nan")
    has_obj = bool(pop["obj"].notna().any())  # plain RetinaNet: no object confidence, its quantities NaN
    return {"n": len(pop), "cls ρ IoU<0.7": bands["low ρ"], "cls ρ IoU≥0.7": bands["high ρ"],
            "cls band ρ": bands["larger ρ"],
            "ρ(cls, obj)": correlation(pop, "cls", "obj")["spearman"] if has_obj else nan,
            "positive obj>0.5": positive_obj_share(pop)["share"] if has_obj else nan,
            "lifted by obj^0.4·cls^0.6": product_lift_share(pop, 0.4)["share"] if has_obj else nan,
            "mid − high IoU obj": mid_iou_obj_gap(pop)["gap"] if has_obj else nan,
            "small − medium ρ(obj, IoU)": size_correlation_gap(pop)["gap"] if has_obj else nan}


def dump_ranking_wrong_survivors(model: str, dump: Dump, alpha: float) -> dict:
    """Wrong-survivor rates (:func:`analysis.measures.metrics.wrong_survivor_rate`, NMS's own suppressions)
    of one checkpoint's NMS ranked by the product obj^α·cls^(1−α) and by cls alone.

    Returns:
        ``{"alpha", "rate product", "rate cls", "kept product", "kept cls"}``.
    """
    out = {"alpha": alpha}
    for name, (mode, a) in (("product", ("pow", alpha)), ("cls", ("cls", 0.0))):
        pre, kept, uncapped, nms_iou = nms_under(dump, Fusion(mode, a, 0.5))
        ws = wrong_survivor_rate(pre, kept, nms_kept=uncapped, nms_iou=nms_iou)
        out[f"rate {name}"], out[f"kept {name}"] = ws["rate"], ws["kept"]
    return out


def dump_negative_obj_share(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.negative_obj_share` of one dump's pre-NMS anchors (cls > 0.05)."""
    return negative_obj_share(dump.candidates)


def dump_product_low_obj_share(model: str, dump: Dump, alpha: float = 0.4) -> dict:
    """:func:`analysis.measures.metrics.low_obj_share` of one dump's detections after NMS ranked by
    obj^α·cls^(1−α) under its own inference settings (score threshold, at most ``max_per_img``
    per image)."""
    return low_obj_share(rescore(dump.candidates, "pow", alpha, **inference_kwargs(dump.meta)))


def cls_only_matched_iou(model: str, dump: Dump) -> dict:
    """:func:`analysis.measures.metrics.matched_mean_iou` of one dump's detections with NMS ranked by cls
    alone (Table 1's protocol, at most ``max_per_img`` per image)."""
    return matched_mean_iou(rescore(dump.candidates, "cls", 0.0, **inference_kwargs(dump.meta)))

"""The cross-family comparison (notebook ``06_families``): for each dense-detector family of a
run, how well its ranking score tracks localisation and how much AP that buys.

Glossary: C dumped candidates ((anchor, label) pairs) of one dump; a family's *quality* score is
the dump's ``obj`` column (centerness, predicted IoU, alignment probability; NaN for heads that
fold it into the class score, GFL and VarifocalNet); its *ranking score* is what NMS ranks by
(:func:`analysis.scoring.rescore.deployed_rule`).

Per dump (one row, for :func:`analysis.measures.seeds.over_seeds`), with the measurement rules of the
other pages: pairs before NMS are those with cls > 0.05 (:func:`analysis.measures.metrics.before_nms`);
class scores against the same-class IoU per (anchor, label) pair; a quality score against the
any-class IoU with one row per anchor (:func:`analysis.measures.metrics.per_anchor`); Spearman rank
correlations.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..inputs.io import Dump
from ..measures.metrics import (
    before_nms,
    fusion_formula,
    oracle_candidates,
    per_anchor,
    population_alignment,
    rank_correlation,
    with_deployed_score,
)
from ..scoring.fusion import ALPHA_GRID
from ..scoring.rescore import deployed_fusion
from .tables import cls_only_ap, deployed_ap, dump_ap, dump_wrong_survivors

# The columns of :func:`family_row` a table shows, in order.
FAMILY_METRICS: tuple[str, ...] = ("AP", "AP cls only", "AP IoU oracle", "cls~IoU", "quality~IoU",
                                   "ranking~IoU", "cls~IoU (IoU-chosen)", "quality~IoU (IoU-chosen)",
                                   "ranking~IoU (IoU-chosen)", "wrong-survivor rate")


def has_quality(dump: Dump) -> bool:
    """Whether the dump's head has a separate quality score (``obj`` not all NaN)."""
    return bool(dump.candidates["obj"].notna().any())


def ranking_formula(meta: dict) -> str:
    """What NMS ranks by, as text, with the head's own post-processing where it has one: e.g.
    ``cls·q (after top-k)`` for FCOS, ``sqrt(cls·q) (top-k anchors; score voting)`` for PAA."""
    f = deployed_fusion(meta)
    post = meta.get("post_process") or {}
    notes = ["after top-k"] if f["order"] == "after_topk" and f["mode"] != "cls" else []
    notes += {"anchors": ["top-k anchors"], "argmax": ["one class per anchor"]}.get(post.get("selection") or "", [])
    notes += ["score voting"] if post.get("score_voting") else []
    text = fusion_formula(f).replace("obj", "q")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def family_row(model: str, dump: Dump) -> dict:
    """One dump's cross-family numbers.

    - ``AP``: COCO AP of the deployed ranking rule (equal to live inference);
      ``AP cls only``: NMS ranked by the class score alone (= ``AP`` without a quality score);
      ``AP IoU oracle``: ``IoU^0.4 · cls^0.6`` with the true class-agnostic IoU in place of a
      quality score — what a perfect quality branch under the paper's fusion would give
      (approximate: the dump holds the pairs its own rules keep).
    - ``cls~IoU``, ``quality~IoU``, ``ranking~IoU``: Spearman correlations before NMS of the
      class score, the quality score (NaN: none) and the ranking score with the IoU, on the
      candidates with cls > 0.05 (selected on cls: tilted towards the quality score); the same
      three ``(IoU-chosen)`` on the anchors chosen by their IoU alone
      (:func:`analysis.measures.metrics.population_alignment`; NaN for dumps without that population).
    - ``wrong-survivor rate``: share of NMS's well-localised survivors (IoU ≥ 0.5) that suppressed
      a box fitting their ground truth better by ≥ 0.05 IoU (cap drops excluded;
      :func:`analysis.measures.metrics.wrong_survivor_rate`).
    """
    meta = dump.meta
    pre = before_nms(dump.candidates)
    quality = has_quality(dump)
    ranked = with_deployed_score(pre.assign(obj=pre["obj"].fillna(1.0)), deployed_fusion(meta, dump.meta_file))
    oracle = oracle_candidates(dump.candidates, "IoU oracle")
    return {
        "head": meta.get("head"),
        "quality score": (meta.get("quality") or "obj (quality branch)") if quality else "none",
        "ranks by": ranking_formula(meta),
        "AP": deployed_ap(model, dump)["AP"],
        "AP cls only": cls_only_ap(model, dump)["AP"],
        "AP IoU oracle": dump_ap(dump, "pow", 0.4, candidates=oracle)["AP"],
        "cls~IoU": rank_correlation(pre),
        "quality~IoU": rank_correlation(per_anchor(pre), "obj", "iou_any") if quality else math.nan,
        "ranking~IoU": rank_correlation(ranked, "score"),
        **{f"{k.replace('obj', 'quality')} (IoU-chosen)": v
           for k, v in population_alignment(dump.iou_population, deployed_fusion(meta)).items() if k != "n"},
        "wrong-survivor rate": dump_wrong_survivors(dump)["rate"],
    }


def family_alpha_rows(model: str, dump: Dump, alphas: Sequence[float] = ALPHA_GRID) -> pd.DataFrame:
    """AP of ``quality^α · cls^(1−α)`` for each α (exact on the dump's candidate grid), for a head
    with a separate quality score; no rows otherwise."""
    if not has_quality(dump):
        return pd.DataFrame(columns=["alpha", "AP"])
    return pd.DataFrame([{"alpha": a, "AP": dump_ap(dump, "pow", a)["AP"]} for a in alphas])

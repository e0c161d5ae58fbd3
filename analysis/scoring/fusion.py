"""Score fusion of classification scores and object confidence, as pure tensor functions.

Glossary: N candidates (anchors of one level, or kept detections), K classes.

Modes (``mode`` argument; the paper's Table 4 rows, plus the product of Tables 3 and 5):

==============  ==========================================  ====================
mode            fused score                                 paper
==============  ==========================================  ====================
``cls``         cls                                         "cls"
``cls_thr``     cls where obj > t, else 0                   "cls(obj>0.5)"
``mul``         cls · obj                                   "cls*obj"
``mul_thr``     cls · obj where obj > t, else 0             "cls*obj(obj>0.5)"
``pow``         obj^α · cls^(1-α)                           RetinaNet-Conf (α=0.4)
``pow_thr``     obj^α · cls^(1-α) where obj > t, else 0     product with filter
``geo``         sqrt(cls · obj)                             (TOOD's T-head score)
==============  ==========================================  ====================

``geo`` equals ``pow`` at α = 0.5 in exact arithmetic; it is computed the way mmdet's TOOD head
computes its score (``(σ(cls)·σ(prob)).sqrt()``) so that re-scoring a TOOD dump reproduces its
live detections bit for bit.

:class:`Fusion` bundles a mode with its α, threshold and order (fuse before or after the
per-level top-k). It is the one definition of "fuse, threshold, top-k per level" that the
quality head (:class:`retconf.models.dense_heads.QualityRetinaHead`), the dump's candidate rule
(:func:`fusion_grid`) and the re-scoring of dumps (:mod:`analysis.scoring.rescore`) use.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor

FUSION_MODES: tuple[str, ...] = ("cls", "cls_thr", "mul", "mul_thr", "pow", "pow_thr", "geo")
FUSION_ORDERS: tuple[str, ...] = ("before_topk", "after_topk")


def check_fusion(mode: str, alpha: float, thr: float, order: str = "before_topk") -> None:
    """Raise ``ValueError`` naming the first invalid fusion parameter."""
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion mode {mode!r} is not one of {FUSION_MODES}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fusion alpha={alpha!r} must be in [0, 1]")
    if not 0.0 <= thr < 1.0:
        raise ValueError(f"fusion obj threshold thr={thr!r} must be in [0, 1)")
    if order not in FUSION_ORDERS:
        raise ValueError(f"fusion order {order!r} is not one of {FUSION_ORDERS}")


def fuse_scores(cls: Tensor, obj: Tensor, mode: str = "pow", alpha: float = 0.4,
                thr: float = 0.5) -> Tensor:
    """Fuse classification probabilities with object confidence.

    Args:
        cls (Tensor[N, K] or Tensor[N]): classification probabilities in [0, 1].
        obj (Tensor[N]): object confidence (predicted IoU) in [0, 1].
        mode: one of :data:`FUSION_MODES`.
        alpha: weight of ``obj`` in the ``pow`` modes.
        thr: object-confidence threshold of the ``*_thr`` modes.

    Returns:
        Tensor with the shape of ``cls``.
    """
    check_fusion(mode, alpha, thr)
    o = obj[:, None] if cls.dim() == 2 else obj
    base = mode.removesuffix("_thr")
    if base == "cls":
        fused = cls
    elif base == "mul":
        fused = cls * o
    elif base == "geo":
        fused = (cls * o).sqrt()
    else:
        fused = o.clamp(min=0).pow(alpha) * cls.clamp(min=0).pow(1.0 - alpha)
    if mode.endswith("_thr"):
        fused = torch.where(o > thr, fused, torch.zeros_like(fused))
    return fused


def fuse_arrays(cls: np.ndarray, obj: np.ndarray, mode: str, alpha: float, thr: float) -> np.ndarray:
    """:func:`fuse_scores` on float arrays ``cls``, ``obj`` (shape [C]), as an array."""
    return fuse_scores(torch.tensor(cls), torch.tensor(obj), mode, alpha, thr).numpy()


def legacy_level_scores(cls: Tensor, obj: Tensor, alpha: float, num_level_anchors: int,
                        nms_pre: int) -> Tensor:
    """Scores of the original RetinaNet-Conf code for one pyramid level.

    The official implementation applies ``obj^α · cls^(1-α)`` only on levels with more than
    ``nms_pre`` anchors; smaller levels get ``cls^(1-α)`` with no object confidence at all.
    Kept to measure what that costs; never the default.

    Args:
        cls (Tensor[N, K]), obj (Tensor[N]): as in :func:`fuse_scores`.
        num_level_anchors: anchors on this level (before any filtering).
        nms_pre: the test_cfg ``nms_pre``.
    """
    if nms_pre > 0 and num_level_anchors > nms_pre:
        return fuse_scores(cls, obj, "pow", alpha)
    return cls.clamp(min=0).pow(1.0 - alpha)


ALPHA_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class Fusion:
    """A ranking rule: ``mode`` (:data:`FUSION_MODES`) with its ``alpha`` and ``thr``, applied
    ``order='before_topk'`` (fuse, then threshold and top-k on the fused score) or
    ``'after_topk'`` (mmdet's BaseDenseHead order: threshold and top-k on ``cls``, then fuse the
    survivors, as FCOS and ATSS do with centerness)."""

    mode: str = "cls"
    alpha: float = 0.0
    thr: float = 0.5
    order: str = "before_topk"

    def __post_init__(self) -> None:
        check_fusion(self.mode, self.alpha, self.thr, self.order)

    @classmethod
    def of(cls, spec: dict | None) -> Fusion:
        """From a config / metadata dict (other keys ignored; ``legacy_level_bug`` only while
        false); None is plain ``cls`` ranking.

        Raises:
            ValueError: ``legacy_level_bug`` true: the original code's per-level rule
            (:func:`legacy_level_scores`) is no :class:`Fusion`, and dropping the key would
            silently rank by the plain product instead.
        """
        spec = spec or {}
        if spec.get("legacy_level_bug"):
            raise ValueError(f"fusion {dict(spec)} has legacy_level_bug=True: that per-level rule "
                             "(analysis.scoring.fusion.legacy_level_scores) is not a Fusion; drop the key explicitly "
                             "to mean the plain product")
        return cls(**{k: spec[k] for k in ("mode", "alpha", "thr", "order") if k in spec})

    def as_dict(self) -> dict:
        return asdict(self)

    def scores(self, cls: Tensor, obj: Tensor) -> Tensor:
        """The fused score (Tensor like ``cls``: [N, K] or [N]); ``obj`` Tensor[N]."""
        return fuse_scores(cls, obj, self.mode, self.alpha, self.thr)

    def rank(self, cls: Tensor, obj: Tensor) -> Tensor:
        """What the score threshold and the top-k compare: the fused score before the top-k, the
        classification score after it (shape of ``cls``)."""
        return self.scores(cls, obj) if self.order == "before_topk" else cls

    def select(self, cls: Tensor, obj: Tensor, score_thr: float, nms_pre: int,
               selection: str = "pairs") -> tuple[Tensor, Tensor, Tensor]:
        """One level's candidates under the head's ``selection`` (:data:`SELECTIONS`):

        - ``pairs`` (mmdet's ``filter_scores_and_topk``, every ``BaseDenseHead``): pairs with
          ``rank`` > ``score_thr``, the top ``nms_pre`` pairs (a slice end, see :func:`topk_pairs`);
        - ``anchors`` (PAA): the top ``nms_pre`` anchors by their best ``rank`` (all when
          ``nms_pre`` ≤ 0 or ≥ A), then their pairs with ``rank`` > ``score_thr``;
        - ``argmax`` (YOLOX): each anchor's most probable class, kept when its ``rank`` ≥
          ``score_thr``; no top-k.

        Args:
            cls (Tensor[A, K]) probabilities; obj (Tensor[A]) quality (any value for ``cls``).
        Returns:
            scores (Tensor[N], fused), labels (Tensor[N]), anchors (Tensor[N]), in the order the
            head passes them on to NMS.
        """
        rank = self.rank(cls, obj)
        if selection == "pairs":
            anchors, labels = topk_pairs(rank, score_thr, nms_pre)
        elif selection == "anchors":
            anchors, labels = topk_anchors(rank, score_thr, nms_pre)
        elif selection == "argmax":
            anchors, labels = argmax_pairs(cls, rank, score_thr)
        else:
            raise ValueError(f"selection {selection!r} is not one of {SELECTIONS}")
        if self.order == "before_topk":
            return rank[anchors, labels], labels, anchors
        return self.scores(cls[anchors, labels], obj[anchors]), labels, anchors


# How a head turns one level's scores into the candidates NMS sees (Fusion.select).
SELECTIONS: tuple[str, ...] = ("pairs", "anchors", "argmax")

# The rest of BaseDenseHead's post-processing, beside its ranking rule: the top-k over (anchor,
# class) pairs, boxes not larger than ``min_bbox_size`` dropped, no score voting, the top
# ``max_per_img`` kept. A dump records its head's version (retconf.capture); dumps without one
# are re-scored with this (analysis.scoring.rescore.inference_kwargs).
BASE_POST_PROCESS: dict = {"selection": "pairs", "score_voting": False, "min_bbox_size": True, "max_per_img": True}


def topk_anchors(scores: Tensor, score_thr: float, nms_pre: int) -> tuple[Tensor, Tensor]:
    """PAA's selection (``PAAHead._predict_by_feat_single`` and its ``multiclass_nms``): the
    top ``nms_pre`` anchors by their best score when ``0 < nms_pre < A``, else every anchor;
    then their (anchor, class) pairs with score > ``score_thr``, anchor by anchor in top-k
    order, classes ascending.

    Args:
        scores (Tensor[A, K]).
    Returns:
        anchors (Tensor[N]), labels (Tensor[N]).
    """
    if 0 < nms_pre < scores.size(0):
        _, top = scores.max(dim=1)[0].topk(nms_pre)
    else:
        top = torch.arange(scores.size(0))
    rows, labels = torch.nonzero(scores[top] > score_thr).unbind(dim=1)
    return top[rows], labels


def argmax_pairs(cls: Tensor, scores: Tensor, score_thr: float) -> tuple[Tensor, Tensor]:
    """YOLOX's selection (``YOLOXHead.predict_by_feat``): each anchor's most probable class
    (``torch.max`` of ``cls``), kept where its score ≥ ``score_thr``, anchors ascending.

    Args:
        cls (Tensor[A, K]) probabilities; scores (Tensor[A, K]) what the threshold compares.
    Returns:
        anchors (Tensor[N]), labels (Tensor[N]).
    """
    _, labels = torch.max(cls, 1)
    anchors = torch.nonzero(scores.gather(1, labels[:, None])[:, 0] >= score_thr)[:, 0]
    return anchors, labels[anchors]


def topk_pairs(scores: Tensor, score_thr: float, nms_pre: int) -> tuple[Tensor, Tensor]:
    """(anchor, class) pairs with score > ``score_thr``, the top ``nms_pre`` in descending order:
    mmdet's ``filter_scores_and_topk`` written with torch alone (tested equal), so that this
    module needs no mmdet. As there, ``nms_pre`` ends a slice: -1 (mmdet's "no limit") keeps all
    but the lowest pair, 0 none.

    Args:
        scores (Tensor[A, K]).
    Returns:
        anchors (Tensor[N]), labels (Tensor[N]).
    """
    valid = scores > score_thr
    kept = scores[valid]
    pairs = torch.nonzero(valid)
    k = min(nms_pre, pairs.size(0))
    _, order = kept.sort(descending=True)
    anchors, labels = pairs[order[:k]].unbind(dim=1)
    return anchors, labels


# The paper's Table 4 rows (fusion modes on one RetinaNet-Conf checkpoint) and the filtered
# product beyond it, label -> rule: the dump keeps each one's selection (fusion_grid), the
# re-scored Table 4 (analysis.studies.tables) and `retconf ablations` (analysis.paper.ablation_tables) read them here.
TABLE4_RULES: dict[str, Fusion] = {
    "cls": Fusion("cls"), "cls(obj>0.5)": Fusion("cls_thr", 0.0, 0.5), "cls*obj": Fusion("mul"),
    "cls*obj(obj>0.5)": Fusion("mul_thr", 0.0, 0.5), "product(alpha=0.4;obj>0.5)": Fusion("pow_thr", 0.4, 0.5),
    "product(alpha=0.4)": Fusion("pow", 0.4),
}
PAPER_TABLE4: tuple[str, ...] = ("cls", "cls(obj>0.5)", "cls*obj", "cls*obj(obj>0.5)", "product(alpha=0.4)")


def fusion_grid(deployed: Fusion | None) -> list[Fusion]:
    """The fusions whose live selections a dump keeps: the deployed one, the rules of
    :data:`TABLE4_RULES` (at the deployed threshold), ``pow`` at every α of :data:`ALPHA_GRID`
    and ``pow_thr`` at the deployed α. None (no separate quality score): ``cls`` only.
    Re-scoring a dump with any of them sees exactly the candidates live inference would."""
    if deployed is None:
        return [Fusion("cls")]
    thr = deployed.thr
    grid = [deployed] + [replace(f, thr=thr) for f in TABLE4_RULES.values()]
    grid += [Fusion("pow", a, thr) for a in ALPHA_GRID] + [Fusion("pow_thr", deployed.alpha, thr)]
    return list(dict.fromkeys(grid))

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
==============  ==========================================  ====================
"""
from __future__ import annotations

import torch
from torch import Tensor

FUSION_MODES: tuple[str, ...] = ("cls", "cls_thr", "mul", "mul_thr", "pow", "pow_thr")
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
    else:
        fused = o.clamp(min=0).pow(alpha) * cls.clamp(min=0).pow(1.0 - alpha)
    if mode.endswith("_thr"):
        fused = torch.where(o > thr, fused, torch.zeros_like(fused))
    return fused


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

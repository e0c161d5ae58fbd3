"""Losses of the quality (object confidence / IoU) branch.

Glossary: A anchors of a batch (all levels, all images, flattened).

Every loss takes the branch's *logits* for all anchors, the IoU targets (meaningful on
positives only), a positive mask and a negative mask, and is averaged over the number of
positive anchors (the paper's Function 9: ``1/N_pos · Σ_pos``). Only ``bce_neg`` (the paper's
CE^w) also sums the negatives, each with weight ``neg_weight`` and target 0, over the same
``N_pos``.

==============  ==============================================  ==============
loss            per positive anchor (p = sigmoid(logit), y = IoU)  paper
==============  ==============================================  ==============
``bce``         -(y log p + (1-y) log(1-p))                     CE (default)
``bce_neg``     bce on positives + w · (-log(1-p)) on negatives  CE^w
``l1``          |p - y|                                         L1
``smooth_l1``   0.5 (p-y)²/β if |p-y| < β else |p-y| - 0.5 β    SmoothL1
``l2``          (p - y)²                                        L2
``gfocal``      |y - p|^γ · bce                                 GFocal
==============  ==============================================  ==============
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

QUALITY_LOSSES: tuple[str, ...] = ("bce", "bce_neg", "l1", "smooth_l1", "l2", "gfocal")


def elementwise_quality_loss(logits: Tensor, target: Tensor, loss: str, gamma: float = 2.0,
                             beta: float = 0.11) -> Tensor:
    """Per-anchor loss of positives. ``logits``, ``target``: Tensor[P] → Tensor[P]."""
    if loss in ("bce", "bce_neg"):
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = logits.sigmoid()
    diff = (p - target).abs()
    if loss == "l1":
        return diff
    if loss == "l2":
        return diff.pow(2)
    if loss == "smooth_l1":
        return torch.where(diff < beta, 0.5 * diff.pow(2) / beta, diff - 0.5 * beta)
    if loss == "gfocal":
        return diff.pow(gamma) * F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    raise ValueError(f"quality loss {loss!r} is not one of {QUALITY_LOSSES}")


def quality_loss(logits: Tensor, target: Tensor, pos_mask: Tensor, neg_mask: Tensor,
                 avg_factor: float, loss: str = "bce", neg_weight: float = 1e-4,
                 gamma: float = 2.0, beta: float = 0.11) -> Tensor:
    """Quality loss over a batch, averaged over positives.

    Args:
        logits (Tensor[A]): quality branch outputs before the sigmoid.
        target (Tensor[A]): IoU targets in [0, 1]; only read where ``pos_mask``.
        pos_mask, neg_mask (Tensor[A] bool): positive / negative anchors (ignored ones: neither).
        avg_factor: the normaliser, usually the number of positives (clamped to >= 1).
        loss: one of :data:`QUALITY_LOSSES`.
        neg_weight: weight of each negative in ``bce_neg``.
    """
    if loss not in QUALITY_LOSSES:
        raise ValueError(f"quality loss {loss!r} is not one of {QUALITY_LOSSES}")
    denom = max(float(avg_factor), 1.0)
    total = elementwise_quality_loss(logits[pos_mask], target[pos_mask], loss, gamma, beta).sum()
    if loss == "bce_neg" and neg_weight > 0:
        neg = logits[neg_mask]
        total = total + neg_weight * F.binary_cross_entropy_with_logits(
            neg, torch.zeros_like(neg), reduction="sum")
    # Keep the graph connected to every logit even without positives (DDP needs it).
    return total / denom + 0.0 * logits.sum()


@MODELS.register_module()
class QualityLoss(nn.Module):
    """Configurable quality-branch loss (see the module table): ``dict(type='QualityLoss',
    loss='bce', neg_weight=1e-4, gamma=2.0, beta=0.11, loss_weight=1.0)``."""

    def __init__(self, loss: str = "bce", neg_weight: float = 1e-4, gamma: float = 2.0,
                 beta: float = 0.11, loss_weight: float = 1.0) -> None:
        super().__init__()
        if loss not in QUALITY_LOSSES:
            raise ValueError(f"quality loss {loss!r} is not one of {QUALITY_LOSSES}")
        if neg_weight < 0:
            raise ValueError(f"neg_weight={neg_weight!r} must be >= 0")
        self.loss, self.neg_weight, self.gamma, self.beta = loss, neg_weight, gamma, beta
        self.loss_weight = loss_weight

    def forward(self, logits: Tensor, target: Tensor, pos_mask: Tensor, neg_mask: Tensor,
                avg_factor: float) -> Tensor:
        return self.loss_weight * quality_loss(logits, target, pos_mask, neg_mask, avg_factor,
                                               self.loss, self.neg_weight, self.gamma, self.beta)

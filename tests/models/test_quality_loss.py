from __future__ import annotations

import math

import pytest
import torch

from retconf.models.losses import QualityLoss, quality_loss

# two positives (p = 0.5 and p = sigmoid(2)), one negative, one ignored anchor
LOGITS = torch.tensor([0.0, 2.0, 1.0, 3.0])
TARGET = torch.tensor([0.8, 0.6, 0.0, 0.0])
POS = torch.tensor([True, True, False, False])
NEG = torch.tensor([False, False, True, False])
P1 = 1 / (1 + math.exp(-2.0))


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


@pytest.mark.parametrize("loss, expected", [
    ("bce", (bce(0.5, 0.8) + bce(P1, 0.6)) / 2),
    ("l1", (0.3 + abs(P1 - 0.6)) / 2),
    ("l2", (0.09 + (P1 - 0.6) ** 2) / 2),
    ("smooth_l1", ((0.3 - 0.055) + (abs(P1 - 0.6) - 0.055)) / 2),
    ("gfocal", (0.3 ** 2 * bce(0.5, 0.8) + abs(P1 - 0.6) ** 2 * bce(P1, 0.6)) / 2),
])
def test_positive_only_losses_by_hand(loss: str, expected: float) -> None:
    value = quality_loss(LOGITS, TARGET, POS, NEG, avg_factor=2, loss=loss)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_smooth_l1_quadratic_part() -> None:
    value = quality_loss(torch.tensor([0.0]), torch.tensor([0.45]), torch.tensor([True]),
                         torch.tensor([False]), 1, loss="smooth_l1", beta=0.11)
    assert value.item() == pytest.approx(0.5 * 0.05 ** 2 / 0.11, rel=1e-5)


def test_ce_w_adds_weighted_negatives() -> None:
    neg = -math.log(1 - 1 / (1 + math.exp(-1.0)))
    expected = (bce(0.5, 0.8) + bce(P1, 0.6) + 1e-3 * neg) / 2
    value = quality_loss(LOGITS, TARGET, POS, NEG, 2, loss="bce_neg", neg_weight=1e-3)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_no_positives_gives_zero_but_keeps_the_graph() -> None:
    logits = LOGITS.clone().requires_grad_()
    value = QualityLoss()(logits, TARGET, torch.zeros(4, dtype=torch.bool), NEG, 0)
    assert value.item() == 0.0
    value.backward()
    assert logits.grad is not None


def test_loss_weight_and_bad_names() -> None:
    one = QualityLoss(loss="l1")(LOGITS, TARGET, POS, NEG, 2)
    assert QualityLoss(loss="l1", loss_weight=2.0)(LOGITS, TARGET, POS, NEG, 2).item() == pytest.approx(2 * one.item())
    with pytest.raises(ValueError, match="quality loss 'focal'"):
        QualityLoss(loss="focal")
    with pytest.raises(ValueError, match="neg_weight=-1"):
        QualityLoss(neg_weight=-1)

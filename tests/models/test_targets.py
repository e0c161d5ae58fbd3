from __future__ import annotations

import pytest
import torch

from retconf.models.targets import iou_targets


def test_iou_by_hand_and_gradient_switch() -> None:
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]], requires_grad=True)
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    iou = iou_targets(pred, gt, detach=True)
    assert torch.allclose(iou, torch.tensor([1.0, 50 / 150]), atol=1e-5)
    assert not iou.requires_grad
    live = iou_targets(pred, gt, detach=False)
    live.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"\[P, 4\]"):
        iou_targets(torch.zeros(2, 4), torch.zeros(3, 4))

"""IoU targets of the quality branch.

Glossary: P positive anchors.

The target of each positive anchor is the IoU between its *decoded regressed box* and its
assigned ground truth (ports that use the anchor's own IoU lose AP). The original
RetinaNet-Conf and IoU-aware code compute it from the live box prediction, so gradient flows
from the quality loss into the regression branch through the target; ``detach=True``
(default here) stops that.
"""
from __future__ import annotations

from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor


def iou_targets(pred_boxes: Tensor, gt_boxes: Tensor, detach: bool = True) -> Tensor:
    """Aligned IoU of decoded predictions and their ground truths.

    Args:
        pred_boxes (Tensor[P, 4]): decoded predicted boxes (x1, y1, x2, y2) of positives.
        gt_boxes (Tensor[P, 4]): their assigned ground-truth boxes.
        detach: stop the gradient through the target (default) or let it flow (original code).

    Returns:
        Tensor[P] in [0, 1].
    """
    if pred_boxes.shape != gt_boxes.shape or pred_boxes.shape[-1:] != (4,):
        raise ValueError(f"boxes must both be [P, 4], got {tuple(pred_boxes.shape)} and "
                         f"{tuple(gt_boxes.shape)}")
    if detach:
        pred_boxes = pred_boxes.detach()
    return bbox_overlaps(pred_boxes, gt_boxes, is_aligned=True).clamp(0.0, 1.0)

"""Box IoU and the ground-truth matching of dumps and of COCO results json, in torch without
mmdet: :func:`box_iou` is mmdet's ``bbox_overlaps`` (mode ``iou``) to the bit, :func:`match_gt`
the one matching rule (:data:`analysis.inputs.schema.MATCH_COLUMNS`) that ``retconf dump``
(:mod:`retconf.dump`) and :func:`analysis.measures.coco.detections_from_coco_results` apply.

Glossary: N boxes, G ground truths of one image.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def box_iou(boxes: Any, gt_boxes: Any, eps: float = 1e-6) -> Any:
    """IoU of every box with every ground truth, computed as mmdet's ``bbox_overlaps`` (mode
    ``iou``, union floored at ``eps``) to the bit, without importing mmdet.

    Args:
        boxes (Tensor[N, 4]), gt_boxes (Tensor[G, 4]): corners x1, y1, x2, y2.
    Returns:
        Tensor[N, G].
    """
    area1 = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area2 = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    lt = torch.max(boxes[..., :, None, :2], gt_boxes[..., None, :, :2])
    rb = torch.min(boxes[..., :, None, 2:], gt_boxes[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1[..., None] + area2[..., None, :] - overlap
    return overlap / torch.max(union, union.new_tensor([eps]))


def box_iou_np(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """:func:`box_iou` of float64 arrays: boxes float[N, 4], gt_boxes float[G, 4] (corners) ->
    float64[N, G]."""
    return box_iou(torch.from_numpy(np.asarray(boxes, np.float64)),
                   torch.from_numpy(np.asarray(gt_boxes, np.float64))).numpy()


def crowd_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` (COCOeval's box IoU): det float64[D, 4], gt float64[D, G, 4]
    (x, y, w, h; each detection against its own row of ground truths), crowd bool[D, G] (a crowd
    ground truth divides by the detection's area alone) -> float64[D, G]."""
    dx, dy, dw, dh = (det[:, None, j] for j in range(4))
    gx, gy, gw, gh = (gt[..., j] for j in range(4))
    w = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    h = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    hit = (w > 0) & (h > 0)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hit, inter / union, 0.0)


def match_gt(boxes: Any, labels: Any, gt_boxes: Any, gt_labels: Any) -> dict[str, Any]:
    """Best IoU of each box with a ground truth of the same class and of any class: the one
    matching rule of dumps and of COCO results json input
    (:func:`analysis.measures.coco.detections_from_coco_results`).

    All boxes must be in one frame (the dump uses original-image pixels).

    Args:
        boxes (Tensor[N, 4]), labels (Tensor[N]); gt_boxes (Tensor[G, 4]), gt_labels (Tensor[G]).
    Returns:
        the :data:`analysis.inputs.schema.MATCH_COLUMNS`: ``iou_same`` (Tensor[N]), ``iou_any`` (Tensor[N]),
        ``gt_same`` / ``gt_any`` (Tensor[N], index of the matched same-class / any-class ground
        truth, -1 when there is none), ``gt_area`` (Tensor[N], box area of the ``gt_any``
        ground truth in pixels², NaN when there is none).
    """
    n = boxes.shape[0]
    none = torch.full((n,), -1, dtype=torch.long)
    if gt_boxes.shape[0] == 0 or n == 0:
        zeros = boxes.new_zeros(n)
        return {"iou_same": zeros, "iou_any": zeros.clone(), "gt_same": none, "gt_any": none.clone(),
                "gt_area": boxes.new_full((n,), float("nan"))}
    iou = box_iou(boxes, gt_boxes)
    same = torch.where(labels[:, None] == gt_labels[None, :], iou, iou.new_full((), -1.0))
    iou_same, gt_same = same.max(1)
    gt_same = torch.where(iou_same >= 0, gt_same, none)
    iou_any, gt_any = iou.max(1)
    gt_any = torch.where(iou_any > 0, gt_any, none)
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    gt_area = torch.where(gt_any >= 0, areas[gt_any.clamp(min=0)], boxes.new_full((), float("nan")))
    return {"iou_same": iou_same.clamp(min=0), "iou_any": iou_any, "gt_same": gt_same,
            "gt_any": gt_any, "gt_area": gt_area}


__all__ = ["box_iou", "match_gt"]

"""RetinaNet head with one quality branch: the shared implementation of RetinaNet-Conf and
IoU-aware RetinaNet.

Glossary: B images, L pyramid levels, A anchors per location (9), K classes, H×W a level's
feature map, N candidates of one level after filtering.

The branch is one 3×3 conv with A outputs (one per anchor) on the last feature of either the
classification tower (``quality_tower='cls'``, RetinaNet-Conf) or the regression tower
(``'reg'``, IoU-aware RetinaNet). Training: target = IoU of each positive's decoded box with
its ground truth (:func:`retconf.models.targets.iou_targets`), loss from
:class:`retconf.models.losses.QualityLoss`. Inference: the fusion of
:mod:`retconf.fusion`, applied on every level, before or after the per-level top-k and
score threshold.
"""
from __future__ import annotations

import copy

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.utils import filter_scores_and_topk, images_to_levels, multi_apply
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...fusion import Fusion, check_fusion, legacy_level_scores
from ..targets import iou_targets

DEFAULT_FUSION = dict(mode="pow", alpha=0.4, thr=0.5, order="before_topk", legacy_level_bug=False)


@MODELS.register_module()
class QualityRetinaHead(RetinaHead):
    """RetinaHead + a quality branch; see the module docstring.

    Args:
        quality_tower: ``'cls'`` (RetinaNet-Conf) or ``'reg'`` (IoU-aware RetinaNet).
        loss_quality: config of the quality loss (``QualityLoss``).
        target_grad: let gradient flow through the IoU target into the box branch (the
            original authors' code) instead of detaching it (default).
        fusion: ``dict(mode, alpha, thr, order, legacy_level_bug)``; missing keys take
            :data:`DEFAULT_FUSION`. ``order='after_topk'`` is mmdet's BaseDenseHead order
            (top-k and ``score_thr`` on the classification score, then fuse);
            ``legacy_level_bug=True`` reproduces the original RetinaNet-Conf code (product only
            on levels with more than ``nms_pre`` anchors, ``cls^(1-α)`` elsewhere).
    """

    def __init__(self, *args, quality_tower: str = "cls",
                 loss_quality: dict = dict(type="QualityLoss", loss="bce", loss_weight=1.0),  # noqa: B006 (mmdet style; never mutated)
                 target_grad: bool = False, fusion: dict | None = None, **kwargs) -> None:
        if quality_tower not in ("cls", "reg"):
            raise ValueError(f"quality_tower={quality_tower!r} must be 'cls' or 'reg'")
        self.quality_tower = quality_tower
        self.target_grad = target_grad
        self.fusion = ConfigDict({**DEFAULT_FUSION, **(fusion or {})})
        unknown = set(self.fusion) - set(DEFAULT_FUSION)
        if unknown:
            raise ValueError(f"unknown fusion keys {sorted(unknown)}; allowed: {sorted(DEFAULT_FUSION)}")
        check_fusion(self.fusion.mode, self.fusion.alpha, self.fusion.thr, self.fusion.order)
        super().__init__(*args, **kwargs)
        self.loss_quality = MODELS.build(loss_quality)

    def _init_layers(self) -> None:
        super()._init_layers()
        in_channels = self.feat_channels if self.stacked_convs > 0 else self.in_channels
        self.retina_quality = nn.Conv2d(in_channels, self.num_base_priors, 3, padding=1)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One level: x (Tensor[B, C, H, W]) → cls (Tensor[B, A·K, H, W]),
        box deltas (Tensor[B, A·4, H, W]), quality logits (Tensor[B, A, H, W])."""
        cls_feat = reg_feat = x
        for cls_conv in self.cls_convs:
            cls_feat = cls_conv(cls_feat)
        for reg_conv in self.reg_convs:
            reg_feat = reg_conv(reg_feat)
        quality_feat = cls_feat if self.quality_tower == "cls" else reg_feat
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat), self.retina_quality(quality_feat)

    # ------------------------------------------------------------------ training
    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     quality_preds: list[Tensor], batch_gt_instances: InstanceList,
                     batch_img_metas: list[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """RetinaNet's losses plus ``loss_quality`` (one value over all levels)."""
        featmap_sizes = [f.size()[-2:] for f in cls_scores]
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas, device=device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         avg_factor) = self.get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                                        batch_img_metas,
                                        batch_gt_instances_ignore=batch_gt_instances_ignore)
        num_level_anchors = [a.size(0) for a in anchor_list[0]]
        all_anchor_list = images_to_levels([cat_boxes(a) for a in anchor_list], num_level_anchors)
        losses_cls, losses_bbox = multi_apply(
            self.loss_by_feat_single, cls_scores, bbox_preds, all_anchor_list, labels_list,
            label_weights_list, bbox_targets_list, bbox_weights_list, avg_factor=avg_factor)
        loss_quality = self.quality_loss_all_levels(
            quality_preds, bbox_preds, all_anchor_list, labels_list, label_weights_list,
            bbox_targets_list, avg_factor)
        return dict(loss_cls=losses_cls, loss_bbox=losses_bbox, loss_quality=loss_quality)

    def quality_loss_all_levels(self, quality_preds: list[Tensor], bbox_preds: list[Tensor],
                                anchors: list[Tensor], labels: list[Tensor],
                                label_weights: list[Tensor], bbox_targets: list[Tensor],
                                avg_factor: float) -> Tensor:
        """Quality loss over all levels; per-level inputs as in ``loss_by_feat_single``:
        quality (Tensor[B, A, H, W]), boxes (Tensor[B, A·4, H, W]), anchors/targets
        (Tensor[B, A·H·W, 4]), labels/weights (Tensor[B, A·H·W])."""
        dim = self.bbox_coder.encode_size
        # float32 whatever the autocast dtype: the IoU targets and the BCE are computed in float32.
        logits = torch.cat([q.permute(0, 2, 3, 1).reshape(q.size(0), -1) for q in quality_preds], 1).reshape(-1).float()
        deltas = torch.cat([b.permute(0, 2, 3, 1).reshape(b.size(0), -1, dim) for b in bbox_preds], 1).reshape(-1, dim).float()
        flat_anchors = torch.cat([get_box_tensor(a) for a in anchors], 1).reshape(-1, 4)
        targets = torch.cat(bbox_targets, 1).reshape(-1, bbox_targets[0].size(-1))
        flat_labels = torch.cat(labels, 1).reshape(-1)
        weights = torch.cat(label_weights, 1).reshape(-1)
        pos = (flat_labels >= 0) & (flat_labels < self.num_classes)
        neg = (flat_labels == self.num_classes) & (weights > 0)
        iou = logits.new_zeros(logits.shape)
        if pos.any():
            pred_boxes = get_box_tensor(self.bbox_coder.decode(flat_anchors[pos], deltas[pos]))
            gt_boxes = targets[pos] if self.reg_decoded_bbox else get_box_tensor(
                self.bbox_coder.decode(flat_anchors[pos], targets[pos]))
            iou = iou.index_put((pos.nonzero(as_tuple=True)[0],),
                                iou_targets(pred_boxes, gt_boxes, detach=not self.target_grad))
        return self.loss_quality(logits, iou, pos, neg, avg_factor)

    # ------------------------------------------------------------------ inference
    def _predict_by_feat_single(self, cls_score_list: list[Tensor], bbox_pred_list: list[Tensor],
                                score_factor_list: list[Tensor], mlvl_priors: list[Tensor],
                                img_meta: dict, cfg: ConfigDict, rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        """Fuse on every level, filter, decode and NMS one image.

        ``score_factor_list`` holds the quality logits (Tensor[A, H, W] per level). Returned
        instances carry ``scores`` (fused, used by NMS), ``cls_scores`` (raw classification
        probability of the label) and ``obj_scores`` (sigmoid of the quality branch).
        """
        cfg = ConfigDict(copy.deepcopy(self.test_cfg if cfg is None else cfg))
        nms_pre = cfg.get("nms_pre", -1)
        score_thr = cfg.get("score_thr", 0)
        dim = self.bbox_coder.encode_size
        keep = dict(bbox_pred=[], priors=[], scores=[], labels=[], cls_scores=[], obj_scores=[])
        for cls_score, bbox_pred, quality, priors in zip(cls_score_list, bbox_pred_list,
                                                        score_factor_list, mlvl_priors):
            bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, dim)
            obj = quality.permute(1, 2, 0).reshape(-1).sigmoid()
            cls = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels).sigmoid()
            level = self.fuse_and_filter(cls, obj, score_thr, nms_pre,
                                         dict(bbox_pred=bbox_pred, priors=priors))
            for key, value in level.items():
                keep[key].append(value)
        results = InstanceData()
        results.bboxes = self.bbox_coder.decode(cat_boxes(keep["priors"]),
                                                torch.cat(keep["bbox_pred"]),
                                                max_shape=img_meta["img_shape"])
        for key in ("scores", "labels", "cls_scores", "obj_scores"):
            results[key] = torch.cat(keep[key])
        return self._bbox_post_process(results=results, cfg=cfg, rescale=rescale,
                                       with_nms=with_nms, img_meta=img_meta)

    def fuse_and_filter(self, cls: Tensor, obj: Tensor, score_thr: float, nms_pre: int,
                        extra: dict) -> dict:
        """Fuse and keep the top candidates of one level.

        Args:
            cls (Tensor[A·H·W, K]), obj (Tensor[A·H·W]): probabilities of one level.
            extra: per-anchor tensors to filter alongside (``bbox_pred``, ``priors``).

        Returns:
            dict of Tensor[N] / Tensor[N, 4]: ``scores`` (fused), ``labels``, ``cls_scores``,
            ``obj_scores`` and the filtered ``extra``.
        """
        f = self.fusion
        if f.legacy_level_bug:
            fused = legacy_level_scores(cls, obj, f.alpha, cls.size(0), nms_pre)
            scores, labels, anchors, _ = filter_scores_and_topk(fused, score_thr, nms_pre)
        else:
            scores, labels, anchors = Fusion.of(f).select(cls, obj, score_thr, nms_pre)
        return dict(bbox_pred=extra["bbox_pred"][anchors], priors=extra["priors"][anchors],
                    scores=scores, labels=labels, cls_scores=cls[anchors, labels], obj_scores=obj[anchors])

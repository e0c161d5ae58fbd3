"""mmdet-style tests of RetinaConfHead and IoUAwareRetinaHead."""
from __future__ import annotations

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import retconf.plugin  # noqa: F401  (registration)

IMG = 128
METAS = [{"img_shape": (IMG, IMG), "pad_shape": (IMG, IMG), "scale_factor": (1.0, 1.0)}]
HEADS = ["RetinaConfHead", "IoUAwareRetinaHead"]


def build(head_type: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(
        type=head_type, num_classes=4, in_channels=8, feat_channels=8, stacked_convs=2,
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4,
                                     min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1,
                       debug=False),
        test_cfg=dict(nms_pre=50, min_bbox_size=0, score_thr=0.0,
                      nms=dict(type="nms", iou_threshold=0.5), max_per_img=1000))
    cfg.update(kwargs)
    cfg["test_cfg"] = ConfigDict(cfg["test_cfg"])  # as a config file would give it
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def feats() -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.rand(1, 8, IMG // s, IMG // s) for s in (8, 16, 32, 64, 128)]


def gt(boxes: list[list[float]]) -> InstanceData:
    g = InstanceData()
    g.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    g.labels = torch.arange(len(boxes), dtype=torch.long) % 4
    return g


def losses(head, gts: InstanceData) -> dict:
    outs = head(feats())
    return head.loss_by_feat(*outs, [gts], METAS)


@pytest.mark.parametrize("head_type", HEADS)
def test_empty_gt_only_classification_loss(head_type: str) -> None:
    out = losses(build(head_type), gt([]))
    assert sum(out["loss_cls"]).item() > 0
    assert sum(out["loss_bbox"]).item() == 0
    assert out["loss_quality"].item() == 0


@pytest.mark.parametrize("head_type", HEADS)
@pytest.mark.parametrize("loss", ["bce", "bce_neg", "l1", "smooth_l1", "l2", "gfocal"])
def test_one_gt_all_losses_positive(head_type: str, loss: str) -> None:
    head = build(head_type, loss_quality=dict(type="QualityLoss", loss=loss))
    out = losses(head, gt([[23.6, 31.0, 90.5, 100.2]]))
    assert sum(out["loss_cls"]).item() > 0
    assert sum(out["loss_bbox"]).item() > 0
    assert out["loss_quality"].item() > 0


def _tower_grads(head, target_grad: bool = False) -> tuple[float, float]:
    head.target_grad = target_grad
    out = losses(head, gt([[23.6, 31.0, 90.5, 100.2], [10.0, 60.0, 40.0, 120.0]]))
    out["loss_quality"].backward()
    cls = sum(p.grad.abs().sum().item() for p in head.cls_convs.parameters() if p.grad is not None)
    reg = sum(p.grad.abs().sum().item() for p in head.reg_convs.parameters() if p.grad is not None)
    return cls, reg


def test_conf_branch_trains_the_classification_tower_only() -> None:
    cls, reg = _tower_grads(build("RetinaConfHead"))
    assert cls > 0 and reg == 0


def test_iou_aware_branch_trains_the_regression_tower_only() -> None:
    cls, reg = _tower_grads(build("IoUAwareRetinaHead"))
    assert cls == 0 and reg > 0


def test_target_gradient_switch_reaches_the_box_branch() -> None:
    head = build("RetinaConfHead")
    _, reg_detached = _tower_grads(head, target_grad=False)
    head.zero_grad()
    _, reg_live = _tower_grads(head, target_grad=True)
    assert reg_detached == 0 and reg_live > 0


def predict(head) -> InstanceData:
    outs = head(feats())
    return head.predict_by_feat(*outs, batch_img_metas=METAS, rescale=False, with_nms=False)[0]


@pytest.mark.parametrize("order", ["before_topk", "after_topk"])
def test_fusion_on_every_level_and_extra_fields(order: str) -> None:
    head = build("RetinaConfHead", fusion=dict(order=order))
    det = predict(head)
    # 128 px: levels of 2304, 576, 144, 36 and 9 anchors x 4 classes; nms_pre = 50 keeps the
    # top 50 (anchor, class) pairs of each level but the last, which has only 36.
    assert len(det) == 4 * 50 + 36
    assert torch.allclose(det.scores, det.obj_scores ** 0.4 * det.cls_scores ** 0.6, atol=1e-6)


def _kept_by_hand(head, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls, obj) of the (anchor, class) pairs each level keeps, computed here from the raw head
    outputs: the top nms_pre pairs by the fused score (before_topk) or by cls (after_topk)."""
    cls_scores, _, qualities = head(feats())
    nms_pre, kept_cls, kept_obj = head.test_cfg.nms_pre, [], []
    for cls_score, quality in zip(cls_scores, qualities):
        cls = cls_score[0].permute(1, 2, 0).reshape(-1, 4).sigmoid()
        obj = quality[0].permute(1, 2, 0).reshape(-1, 1).sigmoid().expand_as(cls)
        rank_by = obj ** 0.4 * cls ** 0.6 if order == "before_topk" else cls
        top = rank_by.flatten().topk(min(nms_pre, rank_by.numel())).indices
        kept_cls.append(cls.flatten()[top])
        kept_obj.append(obj.flatten()[top])
    return torch.cat(kept_cls), torch.cat(kept_obj)


@pytest.mark.parametrize("order", ["before_topk", "after_topk"])
def test_fusion_order_decides_which_candidates_survive_top_k(order: str) -> None:
    """The head keeps exactly the pairs its ``order`` ranks highest on each level, and the two
    orders keep different pairs here (so a head that ignored ``order`` fails one of the two)."""
    head = build("RetinaConfHead", fusion=dict(order=order))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        # freshly initialised, every anchor scores about the prior (0.01 +- 1e-6): spread the
        # scores so that ranking by cls and by the fused score really differ (boxes untouched:
        # degenerate boxes would be dropped after top-k)
        for name, weight in head.named_parameters():
            if name.endswith("weight") and not name.startswith(("reg_convs", "retina_reg")):
                weight.copy_(torch.randn(weight.shape, generator=g) * 0.2)  # cls in 0.01-0.9
        det = predict(head)
        cls, obj = _kept_by_hand(head, order)
        other_cls, _ = _kept_by_hand(head, "after_topk" if order == "before_topk" else "before_topk")
    assert cls.unique().numel() == cls.numel()  # no ties: the top-k by hand is unambiguous
    assert (cls.sort().values - other_cls.sort().values).abs().max() > 0.01  # the orders disagree here
    assert torch.allclose(det.cls_scores.sort().values, cls.sort().values, atol=1e-6)
    assert torch.allclose(det.scores.sort().values, (obj ** 0.4 * cls ** 0.6).sort().values, atol=1e-6)


def test_legacy_level_bug_drops_obj_on_small_levels() -> None:
    det = predict(build("RetinaConfHead", fusion=dict(legacy_level_bug=True),
                        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                                      nms=dict(type="nms", iou_threshold=0.5), max_per_img=1000)))
    fused = det.obj_scores ** 0.4 * det.cls_scores ** 0.6
    cls_only = det.cls_scores ** 0.6
    is_fused = torch.isclose(det.scores, fused, atol=1e-6)
    is_cls_only = torch.isclose(det.scores, cls_only, atol=1e-6)
    # levels of 2304, 576 and 144 anchors (> nms_pre = 100) are fused (100 pairs kept each);
    # the levels of 36 and 9 anchors get cls^(1-alpha) only (100 of 144 pairs, and 36 pairs).
    assert int(is_fused.sum()) == 300
    assert int((is_cls_only & ~is_fused).sum()) == 100 + 36


@pytest.mark.parametrize("order", ["before_topk", "after_topk"])
def test_cls_mode_reproduces_plain_retinanet(order: str) -> None:
    head = build("RetinaConfHead", fusion=dict(mode="cls", order=order),
                 test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.005,
                               nms=dict(type="nms", iou_threshold=0.5), max_per_img=100))
    plain = MODELS.build(dict(type="RetinaHead", num_classes=4, in_channels=8, feat_channels=8,
                              stacked_convs=2, anchor_generator=dict(
                                  type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3,
                                  ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
                              bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                                              target_stds=[1.0] * 4),
                              test_cfg=head.test_cfg))
    plain.load_state_dict({k: v for k, v in head.state_dict().items() if "quality" not in k})
    with torch.no_grad():
        mine = head.predict_by_feat(*head(feats()), batch_img_metas=METAS, rescale=False)[0]
        ref = plain.predict_by_feat(*plain(feats()), batch_img_metas=METAS, rescale=False)[0]
    assert len(mine) == len(ref) > 0
    assert torch.allclose(mine.scores, ref.scores) and torch.equal(mine.labels, ref.labels)
    assert torch.allclose(mine.bboxes, ref.bboxes)


@pytest.mark.parametrize("kwargs, match", [
    ({"fusion": dict(alpha=2.0)}, "alpha=2.0"),
    ({"fusion": dict(mode="sum")}, "fusion mode 'sum'"),
    ({"fusion": dict(alhpa=0.3)}, "unknown fusion keys"),
])
def test_bad_head_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build("RetinaConfHead", **kwargs)

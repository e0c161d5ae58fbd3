# Paper comparison, IoU-aware RetinaNet R50-FPN 1x on COCO at 1000x600: IoU branch on the
# regression tower, BCE on positives, score iou^0.5 * cls^0.5 on every level before top-k.
_base_ = './retinanet_r50_fpn_1x_coco.py'
model = dict(
    bbox_head=dict(
        type='IoUAwareRetinaHead',
        loss_quality=dict(type='QualityLoss', loss='bce', loss_weight=1.0),
        target_grad=False,
        fusion=dict(mode='pow', alpha=0.5, thr=0.5, order='before_topk', legacy_level_bug=False)))

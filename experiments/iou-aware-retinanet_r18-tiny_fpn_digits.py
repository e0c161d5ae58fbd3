# Tiny IoU-aware RetinaNet on the embedded digits: the IoU branch on the regression tower,
# fused as iou^0.5 * cls^0.5; everything else is identical to the tiny RetinaNet.
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    bbox_head=dict(
        type='IoUAwareRetinaHead',
        loss_quality=dict(type='QualityLoss', loss='bce', loss_weight=1.0),
        target_grad=False,
        fusion=dict(mode='pow', alpha=0.5, thr=0.5, order='before_topk', legacy_level_bug=False)))

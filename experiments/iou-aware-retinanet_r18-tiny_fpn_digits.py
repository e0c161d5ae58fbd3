# Tiny IoU-aware RetinaNet on the embedded digits: the quality branch of the tiny RetinaNet-Conf
# (same loss, detached target) moved to the regression tower, fused as iou^0.5 * cls^0.5;
# everything else is identical to the tiny RetinaNet.
_base_ = './retinanet-conf_r18-tiny_fpn_digits.py'
model = dict(bbox_head=dict(type='IoUAwareRetinaHead', fusion=dict(alpha=0.5)))

# Paper comparison, IoU-aware RetinaNet R50-FPN 1x on COCO at 1000x600: the quality branch of
# RetinaNet-Conf (BCE on positives, detached target) on the regression tower instead, score
# iou^0.5 * cls^0.5 on every level before top-k.
_base_ = './retinanet-conf_r50_fpn_1x_coco.py'
model = dict(bbox_head=dict(type='IoUAwareRetinaHead', fusion=dict(alpha=0.5)))

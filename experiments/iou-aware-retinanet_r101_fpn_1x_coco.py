# Paper comparison, IoU-aware RetinaNet R101-FPN 1x on COCO at 1000x600.
_base_ = './iou-aware-retinanet_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

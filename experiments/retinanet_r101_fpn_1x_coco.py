# Paper recipe, RetinaNet R101-FPN 1x on COCO at 1000x600 (backbone from `torchvision://resnet101`;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet101.pth).
_base_ = './retinanet_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

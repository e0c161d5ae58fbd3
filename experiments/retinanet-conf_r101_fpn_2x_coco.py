# Paper recipe, RetinaNet-Conf R101-FPN 2x on COCO at 1000x600 (24 epochs, decay at 16 and 22).
_base_ = './retinanet-conf_r101_fpn_1x_coco.py'
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16, 22], gamma=0.1),
]

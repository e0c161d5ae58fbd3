# Tiny VarifocalNet on the embedded digits: the tiny RetinaNet's backbone (same pretrained
# weights), neck, data, schedule and seed, with mmdet's VFNet head (IoU-aware classification
# score trained with the varifocal loss, star-shaped deformable refinement; no separate quality
# score). Head as in mmdet's vfnet_r50_fpn_1x_coco.py at the tiny head width; regression ranges
# and the ATSS anchor scale halved as for the tiny RetinaNet.
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    type='VFNet',
    bbox_head=dict(
        _delete_=True,
        type='VFNetHead',
        num_classes=10,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 16, 32, 64, 128],
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        center_sampling=False,
        dcn_on_last_conv=False,
        use_atss=True,
        use_vfl=True,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                              scales_per_octave=1, center_offset=0.0, strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(type='VarifocalLoss', use_sigmoid=True, alpha=0.75, gamma=2.0,
                      iou_weighted=True, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.5),
        loss_bbox_refine=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                   pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))
# mmcv's deformable convolution has no bfloat16 CPU kernel: the head trains in float32 inside
# the bfloat16 autocast of the backbone and neck.
optim_wrapper = dict(fp32_modules=['bbox_head'])
# ... and it needs contiguous (NCHW) inputs: no channels-last conversion for this detector.
custom_hooks = []

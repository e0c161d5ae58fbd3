# Tiny TOOD on the embedded digits: the tiny RetinaNet's backbone (same pretrained weights),
# neck, data, schedule and seed, with mmdet's TOOD head (task-aligned head: class logits and an
# alignment probability, ranked by their geometric mean). Head as in mmdet's
# tood_r50_fpn_1x_coco.py at the tiny head width (2 stacked convs like every tiny detector);
# anchor scale halved as for the tiny RetinaNet; the ATSS warm-up assigner runs for the first
# 3 of 8 epochs (mmdet: 4 of 12).
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    type='TOOD',
    bbox_head=dict(
        _delete_=True,
        type='TOODHead',
        num_classes=10,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_type='anchor_free',
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                              scales_per_octave=1, strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        initial_loss_cls=dict(type='FocalLoss', use_sigmoid=True, activated=True, gamma=2.0,
                              alpha=0.25, loss_weight=1.0),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, activated=True, beta=2.0,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, initial_epoch=3, initial_assigner=dict(type='ATSSAssigner', topk=9),
                   assigner=dict(type='TaskAlignedAssigner', topk=13), alpha=1, beta=6,
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))
# mmcv's deformable convolution has no bfloat16 CPU kernel: the head trains in float32 inside
# the bfloat16 autocast of the backbone and neck.
optim_wrapper = dict(fp32_modules=['bbox_head'])

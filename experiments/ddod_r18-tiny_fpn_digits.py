# Tiny DDOD on the embedded digits: the tiny RetinaNet's backbone (same pretrained weights), neck,
# data, schedule and seed, with mmdet's DDOD head (disentangled label assignment: separate ATSS
# assigners for classification and regression; IoU branch on the regression tower; score =
# cls · IoU after the per-level top-k). Head as in mmdet's ddod_r50_fpn_1x_coco.py at the tiny
# head width, anchor scale halved as for the tiny RetinaNet, and one change: use_dcn=False.
# mmdet's DDOD makes the first conv of each tower deformable (mmcv DeformConv2dPack), which
# refuses a feature map smaller than its 3x3 kernel ("input image is smaller than kernel"); the
# P7 map of a 192 px image is 2x2. (VFNet's DeformConv2d pads such maps itself and trains.)
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    type='DDOD',
    bbox_head=dict(
        _delete_=True,
        type='DDODHead',
        num_classes=10,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        use_dcn=False,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                              scales_per_octave=1, strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_iou=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True,
                   assigner=dict(type='ATSSAssigner', topk=9, alpha=0.8),
                   reg_assigner=dict(type='ATSSAssigner', topk=9, alpha=0.5),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))

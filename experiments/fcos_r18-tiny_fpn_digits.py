# Tiny FCOS on the embedded digits: the tiny RetinaNet's backbone (same pretrained weights),
# neck, data, schedule and seed, with mmdet's FCOS head (anchor-free points, centerness branch
# on the classification tower; score = cls · centerness after the per-level top-k).
# Head as in mmdet's fcos_r50-caffe_fpn_gn-head_1x_coco.py at the tiny head width; regression
# ranges halved, as the RetinaNet anchor scale is (objects are 12-120 px on a 192 px image).
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=10,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 16, 32, 64, 128],
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True, assigner=None, allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

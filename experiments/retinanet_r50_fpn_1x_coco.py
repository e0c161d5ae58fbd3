# Paper recipe, RetinaNet R50-FPN 1x on COCO at 1000x600 (Section 4 of the paper).
# mmdet's base already matches the rest of the paper's setting: SGD lr 0.01, momentum 0.9,
# weight decay 1e-4, linear warm-up over 500 iterations, decay at epochs 8 and 11, 12 epochs,
# batch 16 = 8 GPUs x 2 images (on fewer GPUs add `--cfg-options auto_scale_lr.enable=True`),
# all loss weights 1.0. The backbone loads ImageNet weights from `torchvision://resnet50`;
# offline, pass a local copy:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet50-0676ba61.pth
# data_root follows mmdet (data/coco/); point elsewhere with `retconf train CONFIG --data-root DIR`.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['retconf'], allow_failed_imports=False)

# The paper's input: at most 1000x600, aspect ratio kept; horizontal flip at train time.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

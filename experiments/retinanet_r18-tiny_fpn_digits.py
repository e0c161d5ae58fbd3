# Tiny RetinaNet on the embedded digits-on-photos dataset: the CPU default of retconf.
#
# ResNet-18 at base width 32 (channels 32/64/128/256), FPN 64 channels, 2 stacked head convs,
# 192x192 input, batch 16. The backbone starts from the shared digit/background classifier
# that `retconf pretrain` writes (the analogue of the paper's ImageNet initialisation: every
# detector starts from the same weights, so they differ only by their head).
# Same composition as mmdet's retinanet_r50_fpn_1x_coco.py, with the digits dataset in place of COCO.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/digits_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['retconf'], allow_failed_imports=False)

pretrained_backbone = 'work_dirs/pretrain_r18-tiny_digits/backbone.pth'
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        depth=18,
        base_channels=32,
        # The pretrained backbone stays frozen (stem and all four stages; batch norm in eval mode,
        # as mmdet's base config has it): every detector of a seed then shares identical features
        # and only neck and head train. Measured by benchmarks/variance_sources.py against
        # fine-tuning every stage (the recipe before, frozen_stages=-1): the paired AP differences
        # vary far less from seed to seed, a training step takes about 0.6x the time, and AP is
        # lower (README, "Where the variance comes from"). frozen_stages=-1 restores the old recipe.
        frozen_stages=4,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone)),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(
        num_classes=10,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        # Objects are 12-120 px on a 192 px image: halve the COCO anchor scale (32 -> 16 px at P3).
        anchor_generator=dict(octave_base_scale=2)),
    test_cfg=dict(nms_pre=1000, score_thr=0.05, max_per_img=100))

# Schedule: AdamW with a short linear warm-up and cosine decay, validated at the end.
max_epochs = 8
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
# CPU speed (benchmarks/train_profile.py): bfloat16 autocast for the training step (weights,
# gradients and optimizer state stay float32; validation and dumps run in float32) and
# channels-last convolutions. enabled=False trains in plain float32 from the same config.
optim_wrapper = dict(
    _delete_=True,
    type='CPUAutocastOptimWrapper',
    dtype='bfloat16',
    enabled=True,
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
custom_hooks = [dict(type='ChannelsLastHook')]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min_ratio=0.01, convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)

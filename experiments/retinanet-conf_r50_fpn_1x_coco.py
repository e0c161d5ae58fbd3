# Paper recipe, RetinaNet-Conf R50-FPN 1x on COCO at 1000x600: object confidence branch on the
# classification tower, BCE on positives, score obj^0.4 * cls^0.6 on every level before top-k.
# The quality branch is written out in full, head defaults included: the resolved config is
# what a finished training is recognised by (retconf.pipeline.inputs_record), so these keys stay.
_base_ = './retinanet_r50_fpn_1x_coco.py'
model = dict(
    bbox_head=dict(
        type='RetinaConfHead',
        loss_quality=dict(type='QualityLoss', loss='bce', loss_weight=1.0),
        target_grad=False,
        fusion=dict(mode='pow', alpha=0.4, thr=0.5, order='before_topk', legacy_level_bug=False)))

# Tiny RetinaNet-Conf on the embedded digits: the tiny RetinaNet with the object confidence
# branch on the classification tower; everything else (data, backbone init, schedule, seed) is
# identical, so the comparison differs only by the head.
# The quality branch is written out in full, head defaults included: the resolved config is
# what a finished training is recognised by (retconf.pipeline.inputs_record), so these keys stay.
_base_ = './retinanet_r18-tiny_fpn_digits.py'
model = dict(
    bbox_head=dict(
        type='RetinaConfHead',
        loss_quality=dict(type='QualityLoss', loss='bce', loss_weight=1.0),
        target_grad=False,
        fusion=dict(mode='pow', alpha=0.4, thr=0.5, order='before_topk', legacy_level_bug=False)))

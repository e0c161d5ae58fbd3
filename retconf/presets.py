"""Named pipeline presets for ``retconf reproduce``: dataset, pretraining and detector settings."""
from __future__ import annotations

from dataclasses import dataclass, field

from .data.digits import DigitsConfig
from .pretrain import PretrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data: DigitsConfig
    pretrain: PretrainConfig
    detectors: dict[str, str]  # name -> config path (relative to the project root)
    cfg_options: dict = field(default_factory=dict)


# The three detectors of the comparison: identical but for the head.
TINY_DETECTORS = {
    "retinanet": "experiments/retinanet_r18-tiny_fpn_digits.py",
    "iou_aware": "experiments/iou-aware-retinanet_r18-tiny_fpn_digits.py",
    "retinanet_conf": "experiments/retinanet-conf_r18-tiny_fpn_digits.py",
}

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="embedded digits on photos, CPU: the default reproduction",
        data=DigitsConfig(),
        pretrain=PretrainConfig(),
        detectors=TINY_DETECTORS,
    ),
    "quick": Preset(
        name="quick",
        description="a smoke run of the whole pipeline in about a minute (AP is not meaningful)",
        data=DigitsConfig(num_train=64, num_val=16),
        pretrain=PretrainConfig(iters=20, batch_size=32, eval_crops=64),
        detectors=TINY_DETECTORS,
        cfg_options={"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1,
                     "param_scheduler.0.end": 2,
                     "param_scheduler.1.end": 1, "param_scheduler.1.T_max": 1,
                     "default_hooks.logger.interval": 1},
    ),
}

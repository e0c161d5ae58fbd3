"""Named pipeline presets for ``retconf reproduce``: dataset, pretraining and detector settings."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .data.digits import DigitsConfig
from .pretrain import PretrainConfig


@dataclass(frozen=True)
class Preset:
    """One reproduction recipe.

    ``data`` None means an existing COCO-format dataset given with ``--data-root``;
    ``pretrain`` None means the configs' own backbone initialisation (``torchvision://`` for the
    COCO recipes; override it with ``--cfg-options model.backbone.init_cfg.checkpoint=FILE``
    offline). ``detectors`` must contain ``retinanet_conf``: the ``--full`` ablation variants are
    trained from its config.
    """

    name: str
    description: str
    data: DigitsConfig | None
    pretrain: PretrainConfig | None
    detectors: dict[str, str]  # name -> config path (relative to the project root)
    cfg_options: dict = field(default_factory=dict)
    # More detectors trained on request (``--detectors``), under the same recipe.
    more_detectors: dict[str, str] = field(default_factory=dict)

    def choose(self, names: list[str] | None) -> Preset:
        """The preset with the detectors ``names`` (None: the default ones). Besides detector
        names, ``paper`` stands for the default detectors, ``families`` for all of
        :attr:`more_detectors` and ``all`` for both. Raises ``ValueError`` naming an unknown one."""
        if not names:
            return self
        known = {**self.detectors, **self.more_detectors}
        groups = {"paper": list(self.detectors), "families": list(self.more_detectors), "all": list(known)}
        chosen: list[str] = []
        for name in names:
            if name not in known and name not in groups:
                raise ValueError(f"unknown detector {name!r} for preset {self.name} "
                                 f"(choose from {', '.join([*groups, *known])})")
            chosen += groups.get(name, [name])
        return replace(self, detectors={n: known[n] for n in dict.fromkeys(chosen)})


# The three detectors of the comparison: identical but for the head.
TINY_DETECTORS = {
    "retinanet": "experiments/retinanet_r18-tiny_fpn_digits.py",
    "iou_aware": "experiments/iou-aware-retinanet_r18-tiny_fpn_digits.py",
    "retinanet_conf": "experiments/retinanet-conf_r18-tiny_fpn_digits.py",
}


# Seven more dense-detector families (mmdet's heads) under the same tiny recipe: backbone and its
# pretrained weights, neck, data, schedule and seeds as the three above; only the head differs.
FAMILY_DETECTORS = {
    "fcos": "experiments/fcos_r18-tiny_fpn_digits.py",
    "atss": "experiments/atss_r18-tiny_fpn_digits.py",
    "gfl": "experiments/gfl_r18-tiny_fpn_digits.py",
    "vfnet": "experiments/vfnet_r18-tiny_fpn_digits.py",
    "tood": "experiments/tood_r18-tiny_fpn_digits.py",
    "paa": "experiments/paa_r18-tiny_fpn_digits.py",
    "ddod": "experiments/ddod_r18-tiny_fpn_digits.py",
}


def coco_detectors(depth: int) -> dict[str, str]:
    """The paper's three 1x COCO recipes for a ResNet ``depth`` (50 or 101)."""
    return {
        "retinanet": f"experiments/retinanet_r{depth}_fpn_1x_coco.py",
        "iou_aware": f"experiments/iou-aware-retinanet_r{depth}_fpn_1x_coco.py",
        "retinanet_conf": f"experiments/retinanet-conf_r{depth}_fpn_1x_coco.py",
    }


def coco_preset(depth: int, tables: str) -> Preset:
    """The paper's 1x recipes on COCO 2017 for ResNet-``depth``."""
    return Preset(name=f"coco_r{depth}",
                  description=f"COCO 2017 at --data-root, GPU: the paper's ResNet-{depth} 1x recipes ({tables})",
                  data=None, pretrain=None, detectors=coco_detectors(depth))


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="embedded digits on photos, CPU: the default reproduction",
        data=DigitsConfig(),
        pretrain=PretrainConfig(),
        detectors=TINY_DETECTORS,
        more_detectors=FAMILY_DETECTORS,
    ),
    "quick": Preset(
        name="quick",
        description="a smoke run of the whole pipeline in about a minute (AP is not meaningful)",
        data=DigitsConfig(num_train=64, num_val=16),
        pretrain=PretrainConfig(iters=20, batch_size=32, eval_crops=64),
        detectors=TINY_DETECTORS,
        more_detectors=FAMILY_DETECTORS,
        cfg_options={"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1,
                     "param_scheduler.0.end": 2,
                     "param_scheduler.1.end": 1, "param_scheduler.1.T_max": 1,
                     "default_hooks.logger.interval": 1},
    ),
    "coco_r50": coco_preset(50, "Tables 1-5"),
    "coco_r101": coco_preset(101, "Table 6"),
}

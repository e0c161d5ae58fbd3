from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from retconf.pretrain import BACKGROUND, PretrainConfig, make_batch, pretrain_backbone
from tests.conftest import TINY_RETINANET


def test_batch_shapes_and_labels() -> None:
    x, y = make_batch(np.random.default_rng(0), PretrainConfig(), 64, "train")
    assert x.shape == (64, 3, 64, 64) and x.dtype == np.float32
    assert y.min() >= 0 and y.max() <= BACKGROUND and len(set(y.tolist())) > 5


def test_pretrained_backbone_loads_into_the_detector_and_is_cached(tmp_path: Path) -> None:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(str(TINY_RETINANET))
    out = tmp_path / "backbone.pth"
    small = PretrainConfig(iters=3, batch_size=8, eval_crops=16)
    meta = pretrain_backbone(cfg, out, small, progress=False)
    assert meta["cached"] is False and 0.0 <= meta["accuracy"] <= 1.0
    assert json.loads(out.with_suffix(".json").read_text())["fingerprint"] == meta["fingerprint"]
    assert pretrain_backbone(cfg, out, small, progress=False)["cached"] is True
    assert pretrain_backbone(cfg, out, PretrainConfig(iters=4, batch_size=8, eval_crops=16),
                             progress=False)["cached"] is False

    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(out))
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    saved = torch.load(out, weights_only=True)["state_dict"]
    for key in ("conv1.weight", "layer4.1.conv2.weight"):
        assert torch.equal(detector.backbone.state_dict()[key], saved[key])

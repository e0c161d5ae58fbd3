"""Stand-ins for what cannot be downloaded here: ImageNet-format backbone weights.

The COCO recipes initialise ResNet from ``torchvision://resnet50``; offline, users point
``model.backbone.init_cfg.checkpoint`` at a local copy. Tests, benchmarks and the GPU check
write a *randomly initialised* file of the same format (torchvision's key names, its ``fc``
classifier included, which mmdet ignores), so the recipe's loading path runs unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path


def write_random_resnet(path: str | os.PathLike, depth: int = 50, seed: int = 0) -> Path:
    """Write a torchvision-format ResNet-``depth`` state dict (random weights) to ``path``.

    Keys and shapes are those of ``torchvision.models.resnet{depth}().state_dict()``: mmdet's
    ResNet uses the same names for the backbone, and torchvision's 1000-way ``fc`` is added.
    """
    import torch
    from mmdet.models.backbones import ResNet

    if depth not in (18, 34, 50, 101, 152):
        raise ValueError(f"depth {depth} is not a torchvision ResNet depth (18, 34, 50, 101, 152)")
    torch.manual_seed(seed)
    net = ResNet(depth=depth, norm_eval=False)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    width = 512 if depth < 50 else 2048
    fc = torch.nn.Linear(width, 1000)
    state["fc.weight"], state["fc.bias"] = fc.weight.detach().clone(), fc.bias.detach().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path

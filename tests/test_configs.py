from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from tests.conftest import ROOT

CONFIGS = sorted(p for p in (ROOT / "experiments").glob("*.py"))


def test_there_are_configs() -> None:
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_model_builds(path: Path) -> None:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import retconf.plugin  # noqa: F401  (registers retconf's heads whatever imported retconf first)

    register_all_modules()
    cfg = Config.fromfile(str(path))
    assert "retconf" in cfg.custom_imports["imports"]
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_name_follows_mmdet_convention(path: Path) -> None:
    parts = path.stem.split("_")
    assert len(parts) >= 4, f"{path.name}: expected {{algo}}_{{backbone}}_{{neck}}_{{schedule}}_{{data}}"
    assert parts[-1] in {"coco", "digits"}

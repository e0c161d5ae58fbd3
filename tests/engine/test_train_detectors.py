"""A few CPU training iterations of each tiny detector on the embedded data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from retconf.apis import train
from retconf.presets import FAMILY_DETECTORS, TINY_DETECTORS
from tests.conftest import ROOT, fast_train_options

# The paper's three; the other families train in tests/engine/test_train_families.py.
TINY = sorted(ROOT / c for c in TINY_DETECTORS.values())


def test_every_tiny_config_is_a_preset_detector() -> None:
    assert {p.name.split("_")[0] for p in TINY} == {"retinanet", "retinanet-conf", "iou-aware-retinanet"}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "experiments").glob("*_r18-tiny_fpn_digits.py")}
    assert on_disk == set(TINY_DETECTORS.values()) | set(FAMILY_DETECTORS.values())


@pytest.mark.parametrize("config", TINY, ids=lambda p: p.name.split("_")[0])
def test_tiny_detector_trains(config: Path, small_digits: Path, tmp_path: Path) -> None:
    record = train(str(config), str(tmp_path), fast_train_options(max_epochs=1), str(small_digits))
    assert record["iter"] == 4
    logs = [json.loads(line) for f in tmp_path.glob("*/vis_data/scalars.json")
            for line in f.read_text().splitlines()]
    losses = [r for r in logs if "loss" in r]
    assert len(losses) == 4 and all(r["loss"] == r["loss"] for r in losses)  # finite, not NaN
    has_quality = not config.name.startswith("retinanet_")
    assert all(("loss_quality" in r) == has_quality for r in losses)

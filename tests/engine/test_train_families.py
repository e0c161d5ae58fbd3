"""A few CPU training iterations of each detector family's tiny config (FCOS, ATSS, GFL,
VarifocalNet, TOOD) on the embedded data."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from retconf.apis import train
from retconf.presets import FAMILY_DETECTORS
from tests.conftest import ROOT, fast_train_options


@pytest.mark.parametrize("name", sorted(FAMILY_DETECTORS))
def test_family_trains(name: str, small_digits: Path, tmp_path: Path) -> None:
    record = train(str(ROOT / FAMILY_DETECTORS[name]), str(tmp_path), fast_train_options(max_epochs=1),
                   str(small_digits))
    assert record["iter"] == 4
    logs = [json.loads(line) for f in tmp_path.glob("*/vis_data/scalars.json")
            for line in f.read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r]
    assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses)

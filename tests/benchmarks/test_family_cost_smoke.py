"""Keeps benchmarks/family_cost.py working (a tiny smoke run, not a measurement): two detectors,
three iterations each on the small digits; every iteration's time is read back from mmengine's
log and the table is written."""
from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

from tests.conftest import ROOT


def test_family_cost_smoke(small_digits: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("family_cost", ROOT / "benchmarks" / "family_cost.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "fc"
    assert mod.main(["--detectors", "retinanet", "fcos", "--iters", "3", "--skip", "1", "--batch", "4",
                     "--threads", "2", "--data-root", str(small_digits), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert list(result["detectors"]) == ["retinanet", "fcos"]
    for r in result["detectors"].values():
        assert r["iterations"] == 3 and r["median_s"] > 0
        assert r["median_s"] == statistics.median(r["seconds_per_iter"][1:])  # the warm-up one left out
    md = out.with_suffix(".md").read_text()
    assert "| fcos |" in md and "| retinanet | " in md and "| 1.00 |" in md

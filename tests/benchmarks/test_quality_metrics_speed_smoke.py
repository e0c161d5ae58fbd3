"""Keeps benchmarks/quality_metrics_speed.py working (a tiny smoke run, not a measurement)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_quality_metrics_speed_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("quality_metrics_speed", ROOT / "benchmarks" / "quality_metrics_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "qm"
    assert mod.main(["--images", "20", "--dets", "10", "--cands", "30", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    run = result["runs"][0]
    assert run["detections"] == 200 and run["candidates"] == 600 and run["total_s"] >= 0
    assert "all of the issue's metrics" in out.with_suffix(".md").read_text()

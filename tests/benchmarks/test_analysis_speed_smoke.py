"""Keeps benchmarks/analysis_speed.py working (a tiny smoke run, not a measurement)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_analysis_speed_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("analysis_speed", ROOT / "benchmarks" / "analysis_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "as"
    assert mod.main(["--sizes", "20", "40", "--cands", "50", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["throughput"]) == {"20", "40"}
    assert result["throughput"]["40"]["total_s"] >= 0
    assert "| 40 | 2,000 |" in out.with_suffix(".md").read_text()

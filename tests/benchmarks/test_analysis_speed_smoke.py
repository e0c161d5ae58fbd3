"""Keeps benchmarks/analysis_speed.py working (a tiny smoke run, not a measurement): its clock is
replaced by one whose stages last known, different times, so the reported totals are checked."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.benchmarks.clock import SquaresClock
from tests.conftest import ROOT

STAGES = ("count_table_s", "correlations_proportions_s", "scatter_data_s")


def test_analysis_speed_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("analysis_speed", ROOT / "benchmarks" / "analysis_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "time", SquaresClock())
    counted = []  # the detections each count table was timed on
    count_table = mod.count_table
    monkeypatch.setattr(mod, "count_table", lambda before, det, images: counted.append(len(det))
                        or count_table(before, det, images))
    out = tmp_path / "as"
    assert mod.main(["--sizes", "20", "40", "--cands", "50", "--out", str(out)]) == 0
    assert counted == [20 * 50, 40 * 50]  # the analysis really ran, on each size's dump
    result = json.loads(out.with_suffix(".json").read_text())
    assert list(result["throughput"]) == ["20", "40"]
    md = out.with_suffix(".md").read_text()
    for n, t in result["throughput"].items():
        assert all(t[s] > 0 for s in STAGES)
        assert t["total_s"] == pytest.approx(sum(t[s] for s in STAGES))  # the total of its stages
        assert (f"| {n} | {int(n) * 50:,} | {t['count_table_s']} | {t['correlations_proportions_s']} | "
                f"{t['scatter_data_s']} | {t['total_s']} |") in md
    assert result["throughput"]["20"]["total_s"] != result["throughput"]["40"]["total_s"]

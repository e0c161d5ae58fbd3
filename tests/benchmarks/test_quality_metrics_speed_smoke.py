"""Keeps benchmarks/quality_metrics_speed.py working (a tiny smoke run, not a measurement): its
clocks are replaced by ones whose stages last known, different times, so the reported stage
times and totals are checked."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.benchmarks.clock import SquaresClock
from tests.conftest import ROOT


def test_quality_metrics_speed_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("quality_metrics_speed", ROOT / "benchmarks" / "quality_metrics_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clock = SquaresClock()
    monkeypatch.setattr(mod, "time", clock)
    out = tmp_path / "qm"
    assert mod.main(["--images", "20", "--dets", "10", "--cands", "30", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    [run] = result["runs"]
    assert run["detections"] == 200 and run["candidates"] == 600
    # wall clock: readings 1-2 time the synthesis (1 s), then stage i runs from reading 3 + 2i to
    # 4 + 2i, i.e. (2 + 2i)² to (3 + 2i)²: 5 + 4i seconds; every stage lasts 1 CPU second
    stages = list(run["stages_s"])
    n = len(stages)
    assert n == 12 and stages[-1].startswith("AP at IoU")  # the set, in the order measured
    assert run["synthesis_s"] == 1.0
    assert list(run["stages_s"].values()) == [5.0 + 4 * i for i in range(n)]
    assert run["stages_cpu_s"] == dict.fromkeys(stages, 1.0)
    assert run["total_s"] == sum(5 + 4 * i for i in range(n)) and run["total_cpu_s"] == n
    # the extras follow: AP(IoU) of the other scores (stage n), TIDE with sizes (stage n + 1)
    # less TIDE alone (the stage before last, n - 2)
    tide_sizes = (5 + 4 * (n + 1)) - (5 + 4 * (n - 2))
    assert run["extras_s"] == {mod.EXTRA[0]: 5.0 + 4 * n, mod.EXTRA[1]: tide_sizes}
    assert run["extras_cpu_s"] == {mod.EXTRA[0]: 1.0, mod.EXTRA[1]: 0.0}
    assert run["total_with_extras_s"] == run["total_s"] + 5 + 4 * n + tide_sizes
    assert clock.readings == 2 + 2 * (n + 2) and clock.cpu_readings == 2 * (n + 2)
    md = out.with_suffix(".md").read_text()
    assert f"| **all of the issue's metrics** | **{run['total_s']}** | **{run['total_cpu_s']}** |" in md
    for name, wall in run["stages_s"].items():
        assert f"| {name} | {wall} | 1.0 |" in md

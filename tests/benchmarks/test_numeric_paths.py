"""benchmarks/numeric_path.py's decomposition and benchmarks/decisive_paths.py's comparison, on
hand-made values (the arithmetic, not a measurement)."""
from __future__ import annotations

import importlib.util
import math
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_decomposition_splits_paths_on_one_machine_from_across_families() -> None:
    np_ = _load("numeric_path")
    key = ("deployed", "iou_aware")
    arms = {"intel": {key: {0: 0.010, 1: 0.020, 2: 0.000}},
            "amd": {key: {0: 0.000, 1: 0.010, 2: -0.010, 3: 0.020}},
            "amd-cap": {key: {0: 0.004, 1: 0.013}}}
    result = np_.compare(arms, {"amd": "AMD", "amd-cap": "AMD"})
    within = [p for p in result["rows"][0]["pairs"] if p["within"]]
    assert [p["arms"] for p in within] == [["amd", "amd-cap"]]
    d = np_.decomposition(result, {"iou_aware": 0.005})[0]
    assert d["seed_arm"] == "amd" and d["seeds"] == 4
    assert d["within_n"] == 2 and d["within_rms"] == pytest.approx(math.sqrt((0.004 ** 2 + 0.003 ** 2) / 2))
    # intel−amd (3 seeds) and intel−amd-cap (2 seeds) are across families
    across = [-0.010, -0.010, -0.010, -0.006, -0.007]
    assert d["across_n"] == 5 and d["across_rms"] == pytest.approx(math.sqrt(sum(v * v for v in across) / 5))
    assert d["eval_sd"] == 0.005
    # without families every pair of arms counts as across
    plain = np_.decomposition(np_.compare(arms))[0]
    assert plain["within_n"] == 0 and plain["across_n"] == 7 and plain["eval_sd"] is None


def _finding(verdict: str, values: list[float], fragile: str = "") -> dict:
    return {"claim": "AP(a) − AP(b)", "claim_id": "t1-x", "verdict": verdict, "values": values,
            "seeds": list(range(len(values))), "mean": sum(values) / len(values), "lo": -1.0, "hi": 1.0,
            "fragile": fragile, "own": False}


def test_decisive_paths_counts_changes_and_checks_the_seeds_kept() -> None:
    dp = _load("decisive_paths")
    before = {"04:t1-x": _finding("reproduced", [0.01, 0.02, 0.03], fragile="near"),
              "04:t1-y": _finding("inconclusive at 3 seeds", [0.0, 0.01, -0.01])}
    after = {"04:t1-x": _finding("inconclusive at 3 seeds", [-0.01, 0.02, 0.03]),
             "04:t1-y": _finding("inconclusive at 3 seeds", [0.02, 0.01, -0.01])}
    result = dp.compare(before, after, replaced=[0])
    assert result["changed"] == 1 and result["changed_unmarked"] == 0 and result["inconsistent"] == []
    row = next(r for r in result["rows"] if r["finding"] == "04:t1-x")
    assert row["replaced_values_before"] == [0.01] and row["replaced_values_after"] == [-0.01]
    # a seed that was not replaced but whose value moved: the two sets were not computed alike
    after["04:t1-y"] = _finding("inconclusive at 3 seeds", [0.0, 0.011, -0.01])
    assert dp.compare(before, after, replaced=[0])["inconsistent"] == ["04:t1-y"]


def test_decisive_paths_inputs_take_the_replaced_seeds_from_the_arm(tmp_path) -> None:
    dp = _load("decisive_paths")
    args = dp.dump_inputs(tmp_path / "run", tmp_path / "arm", [0, 1], [1], ("retinanet", "iou_aware"))
    assert args == [f"retinanet@0={tmp_path}/run/seed_0/dumps/retinanet", f"iou_aware@0={tmp_path}/run/seed_0/dumps/iou_aware",
                    f"retinanet@1={tmp_path}/arm/seed_1/dumps/retinanet", f"iou_aware@1={tmp_path}/arm/seed_1/dumps/iou_aware"]

"""Keeps benchmarks/head_overhead.py working (a tiny smoke run, not a measurement)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_head_overhead_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("head_overhead", ROOT / "benchmarks" / "head_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "ho"
    assert mod.main(["--steps", "1", "--warmup", "0", "--batch", "2", "--size", "64", "64",
                     "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["models"]) == {"retinanet", "iou_aware", "retinanet_conf"}
    assert result["models"]["retinanet"]["train_ratio"] == 1.0
    assert result["models"]["retinanet_conf"]["params"] > result["models"]["retinanet"]["params"]
    assert "| retinanet_conf |" in out.with_suffix(".md").read_text()

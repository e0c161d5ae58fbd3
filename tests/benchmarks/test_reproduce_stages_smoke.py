"""Keeps benchmarks/reproduce_stages.py working (formatting a recorded summary)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_reproduce_stages_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("reproduce_stages", ROOT / "benchmarks" / "reproduce_stages.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"preset": "quick", "run_dir": "r", "seconds": {"data": 1.0, "pretrain": 3.0},
                                   "metrics": {"0": {"retinanet": {"coco/bbox_mAP": 0.25}},
                                               "1": {"retinanet": {"coco/bbox_mAP": 0.5}}}}))
    assert mod.main(["--summary", str(summary), "--out", str(tmp_path / "rs")]) == 0
    md = (tmp_path / "rs.md").read_text()
    assert "| pretrain | 3.0 | 75% |" in md and "| retinanet | 0.250 | 0.500 |" in md

"""Keeps benchmarks/postprocess_grid.py working (a smoke run on the session's small conf_run dump,
two NMS thresholds and the first two rankings of the dump's grid, not a measurement: the whole
grid took 76 s of the suite's time for nothing the two rankings do not exercise)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_postprocess_grid_smoke(conf_run: dict, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("postprocess_grid", ROOT / "benchmarks" / "postprocess_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "grid"
    assert mod.main(["--dump", str(conf_run["dump"].path), "--thresholds", "0.4", "0.6", "--rankings", "2",
                     "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    n_fusions = 2
    assert result["cells"] == 2 * 3 * n_fusions and result["fusions"] == n_fusions
    assert set(result["floor_by_kind_s"]) == {"nms", "soft_nms_linear", "soft_nms_gaussian"}
    assert result["sweep_s"] > 0 and result["floor_nms_only_s"] > 0 and result["eval_s"] > 0
    md = out.with_suffix(".md").read_text()
    assert f"| floor: the same `batched_nms` calls alone, per image (timed right after each cell) | {result['floor_nms_only_s']} |" in md
    assert "2 NMS IoU thresholds (0.4, 0.6)" in md

"""Keeps benchmarks/image_check.py working (a tiny smoke run, not a measurement)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_image_check_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("image_check", ROOT / "benchmarks" / "image_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "ic"
    assert mod.main(["--images", "3", "--repeats", "1", "--work", str(tmp_path / "w"), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["kinds"]["coco_jpeg_640x480"]) == {"header", "decode"}
    assert "| coco_jpeg_640x480 | decode |" in out.with_suffix(".md").read_text()

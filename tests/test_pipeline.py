"""End-to-end `retconf reproduce`: the quick preset always, the default preset with -m slow."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _reproduce(preset: str, tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", preset,
         "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
         "--reports", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_quick_preset_end_to_end_and_rerun_is_cached(quick_run: dict) -> None:
    run, res = quick_run["run"], quick_run["first"]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["metrics"]) == {"retinanet", "iou_aware", "retinanet_conf"}
    for name in summary["metrics"]:
        assert (run / name / "epoch_1.pth").is_file()
        assert (run / "dumps" / name / "metadata.json").is_file()
    assert "summary" in res.stdout and "retinanet" in res.stdout
    assert (quick_run["reports"] / "index.html").is_file()

    again = subprocess.run(quick_run["args"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "backbone cached" in again.stdout and "finished earlier" in again.stdout
    assert "dump of this checkpoint exists" in again.stdout
    assert "reports are newer than their dumps" in again.stdout
    rerun = json.loads((run / "summary.json").read_text())
    assert rerun["seconds"] == summary["seconds"]  # cached stages keep their measured times
    assert "pretrain" in rerun["cached_this_run"]


@pytest.mark.slow
def test_default_preset_reaches_useful_ap(tmp_path: Path) -> None:
    res = _reproduce("tiny", tmp_path, 3600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for name, metrics in summary["metrics"].items():
        assert metrics["coco/bbox_mAP"] >= 0.30, name

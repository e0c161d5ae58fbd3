"""benchmarks/variance_valset.py: the larger-validation-set report on a fixture run (no training)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_first_images_keeps_the_first_n_images_and_their_detections(tmp_path: Path) -> None:
    from analysis.inputs.io import load_dump
    from analysis.measures.quality import dump_ground_truth
    from benchmarks.variance_valset import first_images
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run", seeds=(0,))
    dump = load_dump(run / "seed_0" / "dumps" / "retinanet")
    gt = dump_ground_truth(dump)
    ids = list(gt.attrs["image_ids"])
    sub_gt, sub_dets = first_images(gt, dump.detections, 2)
    assert sub_gt.attrs["image_ids"] == ids[:2] and set(sub_gt["image_id"]) <= set(ids[:2])
    assert set(sub_dets["image_id"]) <= set(ids[:2]) and len(sub_dets) < len(dump.detections)


def test_report_splits_each_pair_on_both_set_sizes(tmp_path: Path) -> None:
    from benchmarks.variance_valset import report
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run", seeds=(0, 1))
    summary = json.loads((run / "summary.json").read_text())
    summary.setdefault("detectors", ["retinanet", "iou_aware", "retinanet_conf"])
    (run / "summary.json").write_text(json.dumps(summary))
    assert report(run, run, str(tmp_path / "valset"), resamples=10) == 0
    out = json.loads((tmp_path / "valset.json").read_text())
    assert out["check_max_abs_diff"] == pytest.approx(0.0, abs=1e-12)  # the same dumps: identical differences
    pairs = {(t["pair"], t["images"]) for t in out["table"]}
    assert {p for p, _ in pairs} == {"retinanet_conf − retinanet", "iou_aware − retinanet"}
    assert all(t["seeds"] == 2 and 0 <= t["eval_share"] <= 1 for t in out["table"])
    assert "| retinanet_conf − retinanet |" in (tmp_path / "valset.md").read_text()

"""TIDE (tidecv) error breakdown and AP as a function of the IoU threshold: hand-computed cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.geometry.matching import ground_truth
from analysis.measures.tide import IOU_THRS, ap_by_iou, tide_errors
from tests.analysis.quality_cases import dets_frame, write_gt

A, B = (0, 0, 10, 10), (50, 50, 60, 60)


@pytest.fixture
def two_gt(tmp_path: Path):
    path = write_gt(tmp_path / "gt.json", [(0, 0, *A), (0, 0, *B)], n_images=2)
    return path, ground_truth(path)


def _errors(dets, gt) -> dict:
    t = tide_errors(dets, gt, sizes=False)
    return dict(zip(t["error"], t["dAP"]))


def test_duplicate_between_two_true_positives(two_gt) -> None:
    # TP on A, duplicate of A, TP on B: AP (101-point) = (51 * 1 + 50 * 2/3) / 101; fixing the
    # duplicate gives 100; nothing else is wrong
    _, gt = two_gt
    e = _errors(dets_frame([(0, 0, 0.9, *A), (0, 0, 0.8, 0, 0, 10, 9), (0, 0, 0.7, *B)]), gt)
    assert e["AP"] == pytest.approx(100 * (51 + 50 * 2 / 3) / 101)
    assert e["Dupe"] == pytest.approx(100 - e["AP"])
    assert e["Cls"] == e["Loc"] == e["Bkg"] == e["Miss"] == 0.0


def test_one_tp_one_background_fp_one_missed(two_gt) -> None:
    _, gt = two_gt
    # background FP above the TP (so it costs AP), B missed; the FP sits on an image without
    # ground truth, which counts because every image of the file is registered
    e = _errors(dets_frame([(1, 0, 0.95, *A), (0, 0, 0.9, *A)]), gt)
    assert e["Bkg"] > 0 and e["Miss"] > 0 and e["Dupe"] == 0.0
    assert e["AP"] == pytest.approx(100 * 51 * 0.5 / 101)


def test_sizes_and_bad_input(two_gt, tmp_path: Path) -> None:
    _, gt = two_gt
    t = tide_errors(dets_frame([(0, 0, 0.9, *A)]), gt)
    assert set(t["size"]) == {"all", "small", "medium", "large"}  # 10x10 boxes: small
    small_miss = t[(t["size"] == "small") & (t["error"] == "Miss")]["dAP"].item()
    assert small_miss == pytest.approx(t[(t["size"] == "all") & (t["error"] == "Miss")]["dAP"].item())
    with pytest.raises(ValueError, match="ground truth"):
        tide_errors(dets_frame([(0, 0, 0.9, *A)]), ground_truth(write_gt(tmp_path / "n.json", [])))
    with pytest.raises(ValueError, match="NaN"):
        tide_errors(dets_frame([(0, 0, np.nan, *A)]), gt)
    empty = tide_errors(dets_frame([]), gt, sizes=False)
    assert empty.loc[empty["error"] == "AP", "dAP"].item() == 0.0


def test_ap_by_iou_threshold(two_gt) -> None:
    path, _ = two_gt
    # one box with IoU 0.8 on A and an exact box on B: AP 1 up to 0.8; above, the first box is a
    # FP and the second a TP: precision 1/2 up to recall 1/2 -> 51 * 0.5 / 101 (101-point AP)
    t = ap_by_iou(dets_frame([(0, 0, 0.9, 0, 0, 10, 8), (0, 0, 0.8, *B)]), str(path))
    assert t["iou_thr"].tolist() == list(IOU_THRS)
    assert np.allclose(t["AP"], [1.0] * 7 + [51 * 0.5 / 101] * 3)
    assert t["APs"].tolist() == t["AP"].tolist() and t["APl"].isna().all()
    assert (ap_by_iou(dets_frame([]), str(path))["AP"] == 0).all()


def test_tide_leaves_matplotlib_style_as_it_was(two_gt) -> None:
    """tidecv's TIDE() sets seaborn's theme globally (rcParams and the colour codes); the figures a
    page draws after TIDE keep their style."""
    import matplotlib

    _, gt = two_gt
    from matplotlib.colors import to_rgb

    before = {k: str(v) for k, v in matplotlib.rcParams.items()}
    codes = {c: to_rgb(c) for c in "bgrmyck"}
    tide_errors(dets_frame([(0, 0, 0.9, *A)]), gt)
    after = {k: str(v) for k, v in matplotlib.rcParams.items()}
    assert {k: (before[k], after[k]) for k in before if before[k] != after[k]} == {}
    assert {c: to_rgb(c) for c in "bgrmyck"} == codes  # seaborn's set_color_codes redefines them

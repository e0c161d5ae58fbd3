"""Per-dump rows of the beyond-AP metrics (analysis.measures.quality) on a small fake dump."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.inputs.io import Dump
from analysis.measures import quality
from tests.analysis.quality_cases import FIXTURE_DETS, FIXTURE_GT, load_fixture

CONF = {"mode": "pow", "alpha": 0.4, "thr": 0.5}


def _dump(fusion) -> Dump:
    gt, dets = load_fixture()
    rng = np.random.default_rng(0)
    n = len(dets)
    dets = dets.assign(cls=dets["score"].astype(np.float32),
                       obj=(rng.random(n).astype(np.float32) if fusion else np.full(n, np.nan, np.float32)),
                       iou_any=rng.random(n).astype(np.float32))
    dets["iou_same"] = dets["iou_any"]
    dets["gt_same"] = -1
    if fusion:
        dets["score"] = (dets["cls"] ** 0.6 * dets["obj"] ** 0.4).astype(np.float32)
    cands = pd.concat([dets, dets.assign(cls=dets["cls"] * 0.5, x1=dets["x1"] + 1)], ignore_index=True)
    cands = cands.assign(level=rng.integers(0, 3, len(cands)).astype(np.int8),
                         anchor=np.arange(len(cands)) // 2)
    meta = {"ann_file": str(FIXTURE_GT), "classes": ["c0", "c1", "c2", "c3"], "fusion": fusion,
            "test_cfg": {"score_thr": 0.05, "nms_pre": 1000, "nms": {"iou_threshold": 0.5}, "max_per_img": 100}}
    return Dump(Path("fake"), meta, cands, dets, pd.DataFrame({"image_id": sorted(dets["image_id"].unique())}))


def test_ranking_scores() -> None:
    conf, plain = _dump(CONF), _dump(None)
    s = quality.ranking_scores(conf.detections, conf.meta)
    assert list(s) == ["cls", "obj", "fused", "oracle"]
    assert np.allclose(s["oracle"], conf.detections["cls"] ** 0.6 * conf.detections["iou_any"] ** 0.4, atol=1e-6)
    p = quality.ranking_scores(plain.detections, plain.meta)
    assert list(p) == ["cls", "fused", "oracle"]  # no quality branch; oracle: the paper's pow, alpha 0.4
    assert np.allclose(p["oracle"], plain.detections["cls"] ** 0.6 * plain.detections["iou_any"] ** 0.4, atol=1e-6)
    pre = quality.ranking_scores(conf.candidates, conf.meta, stage="pre")
    assert np.allclose(pre["fused"], conf.candidates["cls"] ** 0.6 * conf.candidates["obj"] ** 0.4, atol=1e-6)


def test_per_dump_rows() -> None:
    d = _dump(CONF)
    cal = pd.DataFrame(quality.dump_calibration("retinanet_conf", d))
    assert cal["score"].tolist() == ["cls", "cls (isotonic)", "cls (platt)", "obj", "fused", "oracle"]
    assert cal[["LaECE", "D-ECE"]].notna().all().all()
    rel = quality.dump_reliability("retinanet_conf", d)
    assert set(rel["stage"]) == {"after NMS", "before NMS"} and set(rel["view"]) == {"precision", "precision x IoU"}
    assert {0, 1, 2, "all"} <= set(rel.loc[rel["stage"] == "before NMS", "group"])
    lrp = pd.DataFrame(quality.dump_lrp("retinanet_conf", d))
    assert len(lrp) == 4 * 4 and lrp["oLRP"].between(0, 1).all()
    fused = lrp[(lrp["score"] == "fused") & (lrp["size"] == "all")]["oLRP"].item()
    assert fused == pytest.approx(quality.olrp(d.detections, quality.dump_ground_truth(d))["oLRP"])
    tide = quality.dump_tide("retinanet_conf", d)
    assert {"Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"} <= set(tide["error"])
    ap = quality.dump_ap_iou("retinanet_conf", d)
    assert len(ap) == 10 * 4 and (ap.groupby("score")["AP"].first() >= ap.groupby("score")["AP"].last()).all()
    sizes = pd.DataFrame(quality.dump_sizes("retinanet_conf", d))
    assert len(sizes) == 4 * 3 and sizes.groupby("score")["n"].sum().gt(0).all()
    levels = pd.DataFrame(quality.dump_levels("retinanet_conf", d))
    assert set(levels["level"]) <= {"P3", "P4", "P5"} and levels["n"].sum() > 0  # named as on every page


def test_results_json_metrics() -> None:
    out = quality.results_json_metrics(FIXTURE_DETS, FIXTURE_GT)
    assert set(out) == {"calibration", "reliability", "lrp", "calibration by size", "tide", "ap_iou"}
    assert out["calibration"]["score"].tolist() == ["fused", "fused (isotonic)", "fused (platt)", "oracle"]
    # the json's own score reproduces the reference numbers of test_calibration / test_lrp
    fused = out["lrp"][(out["lrp"]["score"] == "fused") & (out["lrp"]["size"] == "all")]
    assert fused["oLRP"].item() == pytest.approx(0.8992354990410469)
    assert len(json.loads(Path(FIXTURE_DETS).read_text())) == 242


def test_detection_levels() -> None:
    d = _dump(CONF)
    levels = quality.detection_levels(d.detections, d.candidates)
    # the detections are the first half of the fake candidates, whose levels are known (the
    # fixture's duplicate box takes the level of its first copy)
    unique = ~d.detections.duplicated(["image_id", "label", "x1", "y1", "x2", "y2"]).to_numpy()
    assert (levels == d.candidates["level"].to_numpy()[: len(d.detections)])[unique].all()
    shifted = d.detections.assign(x1=d.detections["x1"] + 0.5)
    assert (quality.detection_levels(shifted, d.candidates) == -1).all()


def test_calibration_gaps_name_the_seed_and_the_score_without_a_value() -> None:
    nan = float("nan")
    cal = pd.DataFrame({"seed": [0, 0, 1, 1], "model": ["conf"] * 4, "score": ["fused", "cls (isotonic)"] * 2,
                        "D-ECE": [0.1, 0.2, 0.1, nan], "D-ECE dets": [40, 35, 12, 0],
                        "LaECE": [0.1] * 4, "LaECE dets": [40] * 4})
    gaps = quality.calibration_gaps(cal, "conf", "D-ECE", ["fused", "cls (isotonic)"])
    assert gaps == {1: "D-ECE of cls (isotonic) undefined (0 detections of a class with ground truth pass its "
                       "operating threshold on the evaluation images)"}
    assert quality.calibration_gaps(cal, "conf", "LaECE", ["fused", "cls (isotonic)"]) == {}
    with pytest.raises(ValueError, match="'AP'"):
        quality.calibration_gaps(cal, "conf", "AP", ["fused"])


@pytest.mark.parametrize("with_cat_ids", [False, True])
def test_post_nms_metrics_do_not_move_when_the_config_lists_classes_in_another_order(
        tmp_path: Path, with_cat_ids: bool) -> None:
    """One label rule everywhere (mmdet's: label i = the i-th of the file's categories named in
    ``classes``, in the file's order). A config whose class order differs from the annotation
    file must give the same calibration, LRP, TIDE and AP-vs-IoU as the file's own order."""
    d = _dump(CONF)
    data = json.loads(Path(FIXTURE_GT).read_text())
    data["categories"] = [data["categories"][i] for i in (2, 0, 3, 1)]  # file order c2, c0, c3, c1
    ann = tmp_path / "shuffled.json"
    ann.write_text(json.dumps(data))
    to_id = np.array([1, 2, 3, 4])  # fixture labels are category id - 1
    file_order = [c["id"] for c in data["categories"]]
    relabel = {cid: i for i, cid in enumerate(file_order)}  # what mmdet trains with on this file
    dets = d.detections.assign(label=[relabel[c] for c in to_id[d.detections["label"]]])
    cands = d.candidates.assign(label=[relabel[c] for c in to_id[d.candidates["label"]]])
    meta = {**d.meta, "ann_file": str(ann), "classes": ["c3", "c1", "c0", "c2"]}  # the config's own order
    if with_cat_ids:
        meta["cat_ids"] = file_order
    shuffled = Dump(Path("fake"), meta, cands, dets, d.images)
    for fn in (quality.dump_calibration, quality.dump_lrp):
        a, b = pd.DataFrame(fn("m", d)), pd.DataFrame(fn("m", shuffled))
        pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(quality.dump_tide("m", d), quality.dump_tide("m", shuffled))
    pd.testing.assert_frame_equal(quality.dump_ap_iou("m", d), quality.dump_ap_iou("m", shuffled))
    from analysis.geometry.matching import ground_truth

    with pytest.raises(ValueError, match="shuffled.json: no category with id 7"):
        ground_truth(ann, cat_ids=[1, 7])


def test_level_rows_leave_out_classes_without_ground_truth() -> None:
    """A detection of a class no image has cannot be right or wrong about an object: it is left
    out of the per-level calibration, as D-ECE, LaECE and the per-size rows leave it out."""
    gt, dets = load_fixture()
    dets = dets[dets["label"].isin(gt["label"].unique())].reset_index(drop=True)
    extra = dets.iloc[:5].assign(label=int(gt["label"].max()) + 1)  # a class with no ground truth
    both = pd.concat([dets, extra], ignore_index=True)
    scores = {"fused": both["score"].to_numpy(np.float64)}
    levels = np.zeros(len(both), dtype=np.int64)
    with_extra = quality.level_rows(both, gt, scores, levels)
    without = quality.level_rows(dets, gt, {"fused": dets["score"].to_numpy(np.float64)}, levels[:len(dets)])
    assert with_extra == without

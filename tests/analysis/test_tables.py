"""Rows of the paper's tables from one dump (the layouts the notebooks set beside the paper)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.scoring.rescore import inference_kwargs
from analysis.studies.tables import alpha_table, fusion_table


def test_fusion_table_rows_are_the_papers_table4_rows(conf_run: dict) -> None:
    d = conf_run["dump"]
    table = fusion_table(d.candidates, conf_run["ann"], d.meta["classes"], **inference_kwargs(d.meta))
    assert table["fusion"].tolist() == ["cls", "cls(obj>0.5)", "cls*obj", "cls*obj(obj>0.5)",
                                      "product(alpha=0.4;obj>0.5)", "product(alpha=0.4)"]


def test_alpha_table_layout(conf_run: dict) -> None:
    d = conf_run["dump"]
    table = alpha_table({"retinanet_conf": d, "again": d}, alphas=[0.0, 0.4])
    assert list(table.columns[:3]) == ["alpha", "model", "AP"]
    assert table[["alpha", "model"]].values.tolist() == [[0.0, "again"], [0.0, "retinanet_conf"],
                                                         [0.4, "again"], [0.4, "retinanet_conf"]]


def test_the_alpha_sweep_shard_by_shard_gives_the_whole_dumps_rows(conf_run: dict) -> None:
    from analysis.inputs.io import dump_shards
    from analysis.studies.tables import alpha_rows

    d = conf_run["dump"]
    pd.testing.assert_frame_equal(alpha_rows("retinanet_conf", dump_shards(d.path)), alpha_rows("retinanet_conf", d),
                                  check_exact=True)


def test_paper_protocol_counts_without_caps_and_by_cls() -> None:
    """The paper's protocol: every pair with cls > 0.05, NMS ranked by cls, no per-image cap;
    the deployed one: the dump's own detections (here capped at one per image)."""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    import pytest

    from analysis.inputs.io import Dump
    from analysis.studies.tables import after_nms, dump_counts, paper_after_nms, paper_protocol_truncated

    boxes = [(0, 0, 10, 10), (1, 0, 11, 10), (50, 50, 60, 60), (100, 0, 110, 10), (0, 100, 10, 110)]
    cands = pd.DataFrame({"image_id": 1, "level": [0, 0, 0, 1, 1], "anchor": range(5), "label": 0,
                          "cls": np.float32([0.9, 0.6, 0.3, 0.04, 0.2]), "obj": np.float32([0.1, 0.9, 0.5, 0.9, 0.5]),
                          "x1": [b[0] for b in boxes], "y1": [b[1] for b in boxes], "x2": [b[2] for b in boxes],
                          "y2": [b[3] for b in boxes], "iou_same": [0.6, 0.8, 0.0, 0.0, 0.7], "gt_same": [0, 0, -1, -1, 1]})
    meta = {"test_cfg": {"score_thr": 0.05, "nms_pre": 3, "nms": {"iou_threshold": 0.5}, "max_per_img": 1},
            "fusion": {"mode": "pow", "alpha": 0.4, "thr": 0.5}}
    dets = cands.iloc[[1]].assign(score=np.float32(0.75))  # what the capped, fused pipeline kept
    dump = Dump(Path("fake"), meta, cands, dets, pd.DataFrame({"image_id": [1], "positive_anchors": [2]}))
    paper = paper_after_nms(dump)
    # anchor 1 is suppressed by anchor 0 (higher cls); anchor 3 has cls 0.04; no cap: three survive
    assert sorted(paper["anchor"]) == [0, 2, 4]
    assert list(paper["cls"]) == sorted(paper["cls"], reverse=True)
    assert after_nms(dump) is dets
    assert paper_protocol_truncated(dump) == 1  # level 0 holds 3 = nms_pre pairs with cls > 0.05
    counts = dump_counts("m", dump, [1], "paper").set_index(["stage", "condition"])
    assert counts.loc[("after_nms", "cls>0.05"), "image1"] == 3 and set(counts["protocol"]) == {"paper"}
    with pytest.raises(ValueError, match="protocol must be one of"):
        after_nms(dump, "uncapped")


def test_difference_sources_splits_each_pairs_spread_over_the_runs_seeds(tmp_path: Path) -> None:
    from analysis.measures.seeds import over_seeds
    from analysis.studies.tables import difference_sources, live_ap
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run", seeds=(0, 1, 2))
    out = difference_sources(str(run), [("retinanet_conf", "retinanet")], resamples=20).set_index("pair")
    row = out.loc["retinanet_conf − retinanet"]
    ap = over_seeds(run, ["retinanet", "retinanet_conf"], live_ap).pivot(index="seed", columns="model", values="AP")
    expected = list(ap["retinanet_conf"] - ap["retinanet"])  # the page's AP (pycocotools) per seed
    assert [float(v) for v in row["per_seed"].split(", ")] == pytest.approx(expected, abs=1e-4)
    assert row["seeds"] == 3 and row["seed_sd"] == pytest.approx(float(np.std(expected, ddof=1)), abs=1e-4)
    assert 0 < row["eval_sd"] and 0 <= row["eval_share"] <= 1


def test_headline_quotes_each_ap_and_each_difference_with_its_resolution(tmp_path: Path) -> None:
    from analysis.measures.seeds import interval, over_seeds
    from analysis.studies.tables import headline, live_ap
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run", seeds=(0, 1, 2))
    rows = {r["what"]: r for r in headline(str(run))}
    assert list(rows) == ["AP retinanet", "AP iou_aware", "AP retinanet_conf",
                          "AP iou_aware − retinanet", "AP retinanet_conf − retinanet"]
    ap = over_seeds(run, ["retinanet", "retinanet_conf"], live_ap).pivot(index="seed", columns="model", values="AP")
    d = rows["AP retinanet_conf − retinanet"]
    assert d["per_seed"] == pytest.approx(list(ap["retinanet_conf"] - ap["retinanet"]))
    mean, sd, half, n = interval(d["per_seed"])
    assert (d["mean"], d["half_width"], d["seeds"]) == pytest.approx((mean, half, 3))
    assert np.isnan(d["seeds_to_resolve"]) == (abs(mean) > half)  # a power number only while unresolved
    assert rows["AP retinanet"]["mean"] == pytest.approx(float(ap["retinanet"].mean()))

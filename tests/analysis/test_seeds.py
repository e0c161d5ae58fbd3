"""Aggregation over training seeds (analysis/measures/seeds.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.inputs.io import DumpError
from analysis.inputs.runs import load_summary
from analysis.measures.seeds import mean_sd, over_seeds, run_seeds, seeds_note, summary_metrics


def test_mean_sd_by_hand() -> None:
    df = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "model": ["b"] * 3 + ["a"] * 3,
                       "AP": [0.30, 0.34, 0.32, 0.40, 0.40, 0.40], "other": list("xyzxyz")})
    out = mean_sd(df, ["model"], ["AP", "missing"])
    assert list(out["model"]) == ["b", "a"]  # first-appearance order, not sorted
    assert list(out.columns) == ["model", "seeds", "AP", "AP_sd"]
    b = out.iloc[0]
    assert b["seeds"] == 3
    assert b["AP"] == pytest.approx(0.32)
    assert b["AP_sd"] == pytest.approx(0.02)  # sample sd of 0.30, 0.34, 0.32
    assert out.iloc[1]["AP_sd"] == pytest.approx(0.0)


def test_single_seed_has_no_spread() -> None:
    out = mean_sd(pd.DataFrame({"seed": [0], "model": ["a"], "AP": [0.5]}), ["model"], ["AP"])
    assert out["seeds"].item() == 1 and math.isnan(out["AP_sd"].item())
    assert "no spread" in seeds_note(1) and "over 3 training seeds" in seeds_note(3)


def _summary(tmp_path: Path, **fields) -> Path:
    (tmp_path / "summary.json").write_text(json.dumps(fields))
    return tmp_path


def test_summary_metrics_in_detector_order(tmp_path: Path) -> None:
    m = {"coco/bbox_mAP": 0.4, "coco/bbox_mAP_50": 0.6, "other": 1}
    run = _summary(tmp_path, seeds=[0, 1], detectors=["retinanet", "iou_aware"],
                   metrics={"0": {"iou_aware": m, "retinanet": m, "conf_l1": m},
                            "1": {"iou_aware": m, "retinanet": m, "conf_l1": m}})
    table = summary_metrics(run)
    assert list(table["model"][:3]) == ["retinanet", "iou_aware", "conf_l1"]
    assert list(table.columns) == ["seed", "model", "AP", "AP50"]
    assert run_seeds(run) == [0, 1]


def test_summary_errors_name_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="summary.json: missing"):
        load_summary(tmp_path)
    run = _summary(tmp_path, metrics={})
    with pytest.raises(DumpError, match=r"summary.json: missing field .seeds."):
        load_summary(run)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(DumpError, match="summary.json: not valid JSON"):
        load_summary(tmp_path)


def test_over_seeds_reads_every_seed_of_a_real_run(quick_run: dict) -> None:
    rows = over_seeds(quick_run["run"], ["retinanet", "retinanet_conf"],
                      lambda model, d: {"n": len(d.detections), "images": d.meta["num_images"]})
    assert list(rows.columns[:2]) == ["seed", "model"]
    assert sorted(set(rows["seed"])) == run_seeds(quick_run["run"]) == [0, 1]
    assert len(rows) == 4 and (rows["images"] == 16).all()


def test_paired_deltas_and_their_resolution_by_hand() -> None:
    from analysis.measures.seeds import paired_deltas, paired_summary

    per_seed = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2, 3], "model": ["conf", "ret"] * 3 + ["conf"],
                             "AP": [0.40, 0.39, 0.40, 0.38, 0.36, 0.33, 0.5]})
    deltas = paired_deltas(per_seed, "model", "AP", [("conf", "ret"), ("conf", "missing")])
    assert deltas["comparison"].unique().tolist() == ["conf − ret"]
    assert deltas["seed"].tolist() == [0, 1, 2]  # seed 3 has no pair
    assert deltas["delta"].tolist() == pytest.approx([0.01, 0.02, 0.03])
    row = paired_summary(deltas).iloc[0]
    assert (row.seeds, row.agree) == (3, 3)
    assert row["mean"] == pytest.approx(0.02) and row.sd == pytest.approx(0.01)
    assert row.resolution == pytest.approx(4.302653 * 0.01 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2)
    assert not row.resolved  # 0.02 < 0.0248
    one = paired_summary(deltas.iloc[:1]).iloc[0]
    assert one.seeds == 1 and math.isnan(one.resolution) and not one.resolved


def test_seeds_to_resolve_is_the_smallest_n_whose_half_width_is_below_the_effect() -> None:
    from scipy.stats import t as student_t

    from analysis.measures.seeds import seeds_to_resolve

    for effect, sd in [(0.028, 0.038), (0.007, 0.047), (0.01, 0.05), (0.3, 0.1)]:
        n = seeds_to_resolve(effect, sd)
        half = lambda k, sd=sd: student_t.ppf(0.975, k - 1) * sd / np.sqrt(k)  # noqa: E731
        assert half(n) < effect and (n == 2 or half(n - 1) >= effect), (effect, sd, n)
    assert seeds_to_resolve(-0.028, 0.038) == seeds_to_resolve(0.028, 0.038)  # the sign does not matter
    assert seeds_to_resolve(0.028, 0.038) == 10  # t(0.975, 9) · 0.038 / √10 = 0.0272 < 0.028
    assert seeds_to_resolve(0.1, 0.0) == 2 and seeds_to_resolve(0.0, 0.1, limit=500) == 500
    assert seeds_to_resolve(0.0, 0.0, limit=500) == 500  # nothing to resolve, even without spread
    with pytest.raises(ValueError, match="finite effect"):
        seeds_to_resolve(float("nan"), 0.1)


def test_over_seeds_reports_its_progress_to_the_file_retconf_report_names(tmp_path, monkeypatch) -> None:
    """One JSON line at the start and one after each dump, naming the function; nothing without
    the variable."""
    import json

    from analysis.measures import seeds

    monkeypatch.setattr(seeds, "load_seed_dump", lambda run, seed, model: f"{model}@{seed}")
    def rows(model, dump):
        return {"dump": dump}

    progress = tmp_path / "page.progress"
    monkeypatch.setenv(seeds.PROGRESS_ENV, str(progress))
    out = seeds.over_seeds("run", ["a", "b"], rows, seeds=[0, 1])
    assert list(out["dump"]) == ["a@0", "b@0", "a@1", "b@1"]
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [(r["done"], r["total"], r["what"]) for r in lines] == [(i, 4, "rows") for i in range(5)]
    monkeypatch.delenv(seeds.PROGRESS_ENV)
    progress.unlink()
    seeds.over_seeds("run", ["a"], rows, seeds=[0])
    assert not progress.exists()


def test_over_seeds_many_reads_each_dump_once_and_gives_what_over_seeds_gives(monkeypatch) -> None:
    from analysis.measures import seeds

    loads = []

    def load(run, seed, model):
        loads.append((seed, model))
        return f"{model}@{seed}"

    monkeypatch.setattr(seeds, "load_seed_dump", load)

    def one(model, dump):
        return {"dump": dump}

    def two(model, dump):
        return pd.DataFrame({"dump": [dump, dump], "k": [1, 2]})

    def only_b(model, dump):
        return [{"dump": dump, "x": 1.5}]

    many = seeds.over_seeds_many("run", ["a", "b", "c"], {"one": one, "two": two,
                                                          "b then c": (only_b, ["b", "c"])}, seeds=[0, 1])
    assert loads == [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c")]  # each dump once
    loads.clear()
    singly = {"one": seeds.over_seeds("run", ["a", "b", "c"], one, seeds=[0, 1]),
              "two": seeds.over_seeds("run", ["a", "b", "c"], two, seeds=[0, 1]),
              "b then c": pd.concat([seeds.over_seeds("run", [m], only_b, seeds=[0, 1]) for m in ("b", "c")],
                                    ignore_index=True)}
    assert len(loads) == 6 + 6 + 4
    for name, frame in singly.items():
        pd.testing.assert_frame_equal(many[name], frame)
    assert list(many["b then c"]["dump"]) == ["b@0", "b@1", "c@0", "c@1"]


def test_a_dump_only_shard_readers_need_is_not_loaded_whole(monkeypatch) -> None:
    """over_seeds_many gives functions marked by_shard the dump to read shard by shard, and the
    whole loaded dump when another function of the same pass needs it."""
    from analysis.measures import seeds

    calls = []

    def load(run, seed, model, by_shard=False):
        calls.append(by_shard)
        return "shards" if by_shard else "whole"

    monkeypatch.setattr(seeds, "load_seed_dump", load)
    streamed = seeds.by_shard(lambda model, dump: {"got": dump})
    assert seeds.over_seeds("run", ["a"], streamed, seeds=[0])["got"].tolist() == ["shards"]
    out = seeds.over_seeds_many("run", ["a"], {"s": streamed, "w": lambda model, dump: {"got": dump}}, seeds=[0])
    assert out["s"]["got"].tolist() == out["w"]["got"].tolist() == ["whole"]
    assert calls == [True, False]

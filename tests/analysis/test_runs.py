"""The run layout and the summary.json schema: paths, the writer's and the reader's checks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.inputs import runs


def test_layout_paths() -> None:
    run = Path("RUN")
    assert runs.work_dir(run, 2, "retinanet") == Path("RUN/seed_2/retinanet")
    assert runs.dump_dir(run, 2, "retinanet") == Path("RUN/seed_2/dumps/retinanet")
    assert runs.job_key(2, "retinanet") == "seed_2/retinanet"
    assert runs.backbone_path(run) == Path("RUN/pretrain/backbone.pth")
    assert runs.summary_path(run) == Path("RUN/summary.json")
    assert runs.log_dir(run) == Path("RUN/logs")


def test_dump_metadata_files_are_the_dumps_of_every_seed(tmp_path: Path) -> None:
    for seed, model in ((1, "b"), (0, "a")):
        d = runs.dump_dir(tmp_path, seed, model)
        d.mkdir(parents=True)
        (d / "metadata.json").write_text("{}")
    runs.work_dir(tmp_path, 0, "a").mkdir()
    (runs.work_dir(tmp_path, 0, "a") / "metadata.json").write_text("{}")  # a work dir, not a dump
    assert runs.dump_metadata_files(tmp_path) == [tmp_path / "seed_0/dumps/a/metadata.json",
                                                  tmp_path / "seed_1/dumps/b/metadata.json"]


def _write(run: Path, **fields) -> Path:
    run.mkdir(exist_ok=True)
    runs.summary_path(run).write_text(json.dumps(fields))
    return run


@pytest.mark.parametrize("fields, message", [
    ({"metrics": {}}, r"summary.json: missing field 'seeds'"),
    ({"seeds": "0", "metrics": {}}, r"summary.json: field 'seeds' must be list, got str"),
    ({"seeds": [0, 1], "metrics": {"0": {"a": {}}}}, r"summary.json: field 'metrics' has no models for seed 1"),
    ({"seeds": [True], "metrics": {}}, r"summary.json: field 'seeds' holds True"),
    ({"seeds": [0], "metrics": {"0": {}}, "wall_seconds": "1"}, r"field 'wall_seconds' must be int or float, got str"),
])
def test_reader_names_file_and_field(tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(runs.RunError, match=message):
        runs.load_summary(_write(tmp_path / "run", **fields))


def test_reader_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match=r"summary.json: missing \(run `retconf reproduce` first\)"):
        runs.load_summary(tmp_path)
    runs.summary_path(tmp_path).write_text("{")
    with pytest.raises(runs.RunError, match="summary.json: not valid JSON"):
        runs.load_summary(tmp_path)


def test_writer_refuses_unknown_fields_and_reader_reads_what_it_wrote(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match=r"unknown field\(s\) \['seed'\]"):
        runs.make_summary(seed=[0], metrics={})
    record = runs.make_summary(seeds=[0], metrics={"0": {"retinanet": {"coco/bbox_mAP": 0.3}}},
                               detectors=["retinanet"], ablations=[], wall_seconds=1.5)
    runs.summary_path(tmp_path).write_text(json.dumps(record))
    assert runs.load_summary(tmp_path) == record


def test_detectors_and_ablations_of_a_summary() -> None:
    with_list = {"seeds": [0], "metrics": {"0": {"b": {}, "a": {}}}, "detectors": ["a", "b"], "ablations": ["conf_l1"]}
    without = {"seeds": [0, 1], "metrics": {"0": {"b": {}}, "1": {"b": {}, "a": {}}}}
    assert runs.summary_detectors(with_list) == ["a", "b"]
    assert runs.summary_detectors(without) == ["b", "a"]  # first appearance over the seeds
    assert runs.summary_ablations(with_list) == ["conf_l1"] and runs.summary_ablations(without) == []

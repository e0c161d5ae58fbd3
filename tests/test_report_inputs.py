"""`retconf report` on dumps or COCO results files of one's own (no `retconf reproduce` run): the
pages that apply, an index that says what was analysed and what was left out, and bad inputs
refused before anything is written (issue 28, points 1, 2 and 6)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retconf.cli import main
from tests.analysis.quality_cases import FIXTURE_GT, write_fake_run
from tests.test_report import _parse, table_problems

FIXTURE_DETS = FIXTURE_GT.parent / "fixture_dets.json"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, "\n".join(line for line in err if line.startswith("retconf "))


def _text(page: Path) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Schema-valid dumps of two seeds (the paper's three detectors and FCOS), no training."""
    return write_fake_run(tmp_path_factory.mktemp("fake") / "run", families=("fcos",))


def _results_copy(tmp_path: Path, name: str, scale: float) -> Path:
    """The fixture's results file with every score scaled (another 'detector')."""
    results = json.loads(FIXTURE_DETS.read_text())
    for r in results:
        r["score"] = min(1.0, r["score"] * scale)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(results))
    return path


# ------------------------------------------------------------------ dumps → report
def test_report_of_dumps_writes_the_pages_that_apply(fake: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Dumps of two detectors (one head with a quality score, one of another family) and two
    seeds: pages 05 and 06 run on them, 04 is left out (no RetinaNet), the index lists the
    inputs and says nothing was trained; the input set's summary.json lists the dumps."""
    out = tmp_path / "out"
    inputs = [f"{m}@{s}={fake / f'seed_{s}' / 'dumps' / d}" for s in (0, 1) for m, d in (("conf", "retinanet_conf"), ("fcos", "fcos"))]
    code, err = run(capsys, "report", *inputs, "--only", "05", "06", "--jobs", "1", "--out", out)
    assert (code, err) == (0, "")
    assert sorted(p.name for p in out.glob("*.html")) == ["05_calibration.html", "06_families.html", "index.html"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["kind"] == "dumps" and summary["seeds"] == [0, 1] and summary["detectors"] == ["conf", "fcos"]
    assert {(f["model"], f["seed"]) for f in summary["inputs"]["files"]} == {("conf", 0), ("conf", 1), ("fcos", 0), ("fcos", 1)}
    page05 = (out / "05_calibration.html").read_text()
    assert table_problems(page05) == [] and "conf" in page05 and "fcos" in page05
    assert _parse(out / "06_families.html").tags.get("img", 0) == 2
    index = _text(out / "index.html")
    assert "Nothing was trained or re-run by this command" in index and "retconf reproduce" not in index
    assert "04_main_results: page 04 compares the paper's detectors by name" in index
    assert "08_results: it is the page for COCO results files" in index
    assert "AP conf =" in index and "AP fcos − conf =" in index  # the headline, paired on the first detector


def test_dump_names_and_seeds_come_from_the_metadata() -> None:
    from retconf.inputset import detector_name, parse_input

    assert detector_name("experiments/retinanet-conf_r18-tiny_fpn_digits.py") == "retinanet_conf"
    assert detector_name("mmdet::atss/atss_r50_fpn_1x_coco.py") == "atss"
    assert detector_name("configs/my-det_r50_fpn_1x_coco.py") == "my_det"
    spec = parse_input("gfl@2=dumps/gfl")
    assert (spec.model, spec.seed, spec.path) == ("gfl", 2, Path("dumps/gfl"))
    assert parse_input("dumps/gfl").model is None


def test_without_mmcv_page_07_is_left_out_and_the_index_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """The light install (no mmcv) has hard NMS only: page 07's Soft-NMS rows cannot run there."""
    from types import SimpleNamespace

    import analysis.geometry.nms
    from retconf.inputset import input_pages

    entries = [SimpleNamespace(model="conf", meta={"head": "RetinaConfHead", "quality": "obj"})]
    stems = ["01_misalignment", "07_postprocessing"]
    assert [s for s, _ in input_pages("dumps", entries, stems)[0]] == stems  # mmcv here
    monkeypatch.setattr(analysis.geometry.nms, "mmcv_ops", lambda: None)
    pages, left = input_pages("dumps", entries, stems)
    assert [s for s, _ in pages] == ["01_misalignment"]
    assert "Soft-NMS rows need mmcv's compiled ops" in left["07_postprocessing"]


# ------------------------------------------------------------------ results json → report
def test_report_of_results_files_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two detectors' COCO results files on two seeds, end to end: page 08 with AP, AP(IoU),
    calibration, reliability, sizes, oLRP and TIDE, paired findings per seed; the index says
    which pages need a dump."""
    out = tmp_path / "out"
    files = {(m, s): _results_copy(tmp_path, f"{m}{s}", scale) for (m, s), scale in
             {("a", 0): 1.0, ("a", 1): 0.9, ("b", 0): 0.8, ("b", 1): 0.7}.items()}
    code, err = run(capsys, "report", *[f"{m}@{s}={p}" for (m, s), p in files.items()],
                    "--ann-file", FIXTURE_GT, "--jobs", "1", "--out", out)
    assert (code, err) == (0, "")
    assert sorted(p.name for p in out.glob("*.html")) == ["08_results.html", "index.html"]
    page = _parse(out / "08_results.html")
    assert page.tags.get("img", 0) == 4  # AP(IoU), two reliability views, TIDE
    for header in ("AP50", "LaECE", "D-ECE", "oLRP_loc", "precision x IoU ECE", "resolution"):
        assert header in page.headers, header
    assert " ± " in (out / "08_results.html").read_text()  # two seeds: each mean with its spread in one cell
    text = _text(out / "08_results.html")
    assert "b has a higher COCO AP than a" in text and "b has a lower optimal LRP error than a" in text
    assert table_problems((out / "08_results.html").read_text()) == []
    index = _text(out / "index.html")
    for stem in ("01_misalignment", "02_alpha_sweep", "05_calibration", "07_postprocessing"):
        assert f"{stem}: " in index, stem
    assert "need a dump's candidates" in index


# ------------------------------------------------------------------ refused before anything is written
def _hash_fake_dump(dump: Path, sha: str) -> None:
    meta = json.loads((dump / "metadata.json").read_text())
    meta["ann_sha256"] = sha
    (dump / "metadata.json").write_text(json.dumps(meta))


def test_bad_inputs_are_refused_before_anything_is_written(fake: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    dump = Path(shutil.copytree(fake / "seed_0" / "dumps" / "retinanet_conf", tmp_path / "conf"))
    bad_score = tmp_path / "bad.json"
    results = json.loads(FIXTURE_DETS.read_text())
    results[3]["score"] = "0.9"
    bad_score.write_text(json.dumps(results))
    cases = {
        "results without their annotation file": ([FIXTURE_DETS], f"{FIXTURE_DETS}: a COCO results file needs its annotation file: pass --ann-file FILE"),
        "mixed kinds": ([dump, FIXTURE_DETS, "--ann-file", FIXTURE_GT], "the inputs mix dumps and COCO results files"),
        "a seed missing": ([f"a@0={FIXTURE_DETS}", f"a@1={FIXTURE_DETS}", f"b@0={FIXTURE_DETS}", "--ann-file", FIXTURE_GT],
                           "detector 'b' has no input for seed 1"),
        "the same detector and seed twice": ([FIXTURE_DETS, FIXTURE_DETS, "--ann-file", FIXTURE_GT],
                                             "are both detector 'fixture_dets', seed 0: name them NAME@SEED=PATH"),
        "a score given as a string": ([bad_score, "--ann-file", FIXTURE_GT], f"{bad_score}: entry 3 field 'score' must be a number, got str '0.9'"),
        "no such input": ([tmp_path / "nope"], "nope: no such file or directory"),
    }
    for case, (argv, message) in cases.items():
        code, err = run(capsys, "report", *argv, "--out", out)
        assert code == 2 and message in err, (case, err)
        assert not out.exists(), case


def test_dumps_against_a_changed_annotation_file_are_refused(fake: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """A dump records the SHA-256 of its annotation file: a report against a changed or
    different file stops before any page, naming the file and the field (input sets and runs)."""
    from retconf.io import sha256_file

    out = tmp_path / "out"
    dump = Path(shutil.copytree(fake / "seed_0" / "dumps" / "retinanet_conf", tmp_path / "conf"))
    _hash_fake_dump(dump, sha256_file(FIXTURE_GT))
    changed = tmp_path / "gt.json"
    coco = json.loads(FIXTURE_GT.read_text())
    coco["annotations"][0]["bbox"][0] += 1
    changed.write_text(json.dumps(coco))
    code, err = run(capsys, "report", dump, "--ann-file", changed, "--out", out)
    assert code == 2 and f"{changed}: SHA-256 " in err and f"differs from field 'ann_sha256' of {dump / 'metadata.json'}" in err
    assert not out.exists()
    run_dir = Path(shutil.copytree(fake, tmp_path / "run"))
    _hash_fake_dump(run_dir / "seed_1" / "dumps" / "iou_aware", "0" * 64)
    code, err = run(capsys, "report", run_dir, "--out", out)
    assert code == 2 and f"{FIXTURE_GT}: SHA-256 " in err and "seed_1/dumps/iou_aware/metadata.json" in err
    assert not out.exists()


@pytest.mark.slow
def test_report_of_a_real_dump_runs_every_page_that_applies(conf_run: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """A briefly trained RetinaNet-Conf's dump alone: pages 01, 02, 03, 05 and 07 run on it, and
    the explorer page (sliders and candidate browser) of the input set, linked from the index."""
    out = tmp_path / "out"
    dump = Path(conf_run["dump"].path)
    code, err = run(capsys, "report", f"mine={dump}", "--out", out)
    assert (code, err) == (0, "")
    assert sorted(p.name for p in out.glob("*.html")) == [
        "01_misalignment.html", "02_alpha_sweep.html", "03_ablations.html", "05_calibration.html",
        "07_postprocessing.html", "explore.html", "index.html"]
    explorer = (out / "explore.html").read_text()
    assert "Input set <code>" in explorer and "<code>mine</code>" in explorer and (out / "plotly.min.js").is_file()
    assert 'href="explore.html"' in (out / "index.html").read_text()
    only = tmp_path / "only"  # --only explore: the explorer page alone, and the index
    code, err = run(capsys, "report", f"mine={dump}", "--out", only, "--only", "explore")
    assert (code, err) == (0, "")
    assert sorted(p.name for p in only.glob("*.html")) == ["explore.html", "index.html"]


# ------------------------------------------------------------------ careless inputs (issue 40, point 4)
def _results_variant(tmp_path: Path, name: str, change) -> Path:
    """The fixture's results file with every entry changed by ``change(entry)``."""
    results = json.loads(FIXTURE_DETS.read_text())
    for r in results:
        change(r)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(results))
    return path


def _as_corners(r: dict) -> None:
    x, y, w, h = r["bbox"]
    r["bbox"] = [x, y, x + w, y + h]


def _as_logit(r: dict) -> None:
    import math

    p = min(max(r["score"], 1e-4), 1 - 1e-4)
    r["score"] = math.log(p / (1 - p))


def _far_away(r: dict) -> None:
    r["bbox"][0] += 5000


@pytest.mark.parametrize("name, change, says", [
    ("corners", _as_corners, "look like corners [x1, y1, x2, y2]; COCO results boxes are [x, y, w, h]"),
    ("logits", _as_logit, "230 of 242 scores (95%) lie outside [0, 1] (range -6.91 … 0.984): logits"),
    ("outside", _far_away, "boxes (100%) lie entirely outside their image"),
])
def test_a_results_file_that_looks_wrong_is_reported_naming_the_file_and_the_share(
        tmp_path: Path, capsys: pytest.CaptureFixture, name: str, change, says: str) -> None:
    """Corner boxes, logits and boxes off their images are valid JSON of the right shape: the
    report goes on (a user may know better) but says, on stderr, what looks wrong and in how
    many entries, naming the file; the untouched fixture gets no warning."""
    from analysis.measures.results import load_results

    path = _results_variant(tmp_path, name, change)
    warnings = load_results(path, FIXTURE_GT).meta["warnings"]
    assert len(warnings) == 1 and says in warnings[0], warnings
    assert load_results(FIXTURE_DETS, FIXTURE_GT).meta["warnings"] == []


def test_warnings_reach_stderr_before_the_pages(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from retconf.inputset import parse_input, read_inputs

    path = _results_variant(tmp_path, "corners", _as_corners)
    read_inputs([parse_input(str(path))], str(FIXTURE_GT))
    err = capsys.readouterr().err
    assert f"retconf report: warning: {path}: " in err and "look like corners" in err


def test_calibration_of_scores_outside_0_1_is_refused_naming_the_file(tmp_path: Path) -> None:
    from analysis.measures.results import load_results, probability_problem, results_calibration, results_lrp

    res = load_results(_results_variant(tmp_path, "logits", _as_logit), FIXTURE_GT)
    assert f"{res.path}: 230 of 242 scores lie outside [0, 1] (field 'score'" in probability_problem(res)
    with pytest.raises(ValueError, match="calibration needs probabilities"):
        results_calibration("logits", res)
    assert results_lrp("logits", res)  # what does not read the score as a probability still runs
    assert probability_problem(load_results(FIXTURE_DETS, FIXTURE_GT)) is None


def test_careless_destinations_and_names_are_refused_with_one_line(fake: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """--out inside an input or naming a file, --only with no such page, and one detector's
    predictions given twice under two names: exit 2, one line, nothing written."""
    dump = Path(shutil.copytree(fake / "seed_0" / "dumps" / "retinanet_conf", tmp_path / "conf"))
    twin = Path(shutil.copytree(dump, tmp_path / "twin"))
    before = sorted(p.name for p in dump.rglob("*"))
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    out = tmp_path / "out"
    cases = {
        "--out inside the dump": ([dump, "--out", dump / "reports"], f"--out {dump / 'reports'}: lies inside the input {dump}"),
        "--out is the dump": ([dump, "--out", dump], f"--out {dump}: lies inside the input {dump}"),
        "--out names a file": ([dump, "--out", a_file], f"--out {a_file}: is a file; the reports go to a directory"),
        "--only an unknown page": ([dump, "--out", out, "--only", "99"], "--only 99: no such page; the pages are 01, 02"),
        "one dump under two names": ([f"a={dump}", f"b={twin}", "--out", out],
                                     f"{dump} (a@0) and {twin} (b@0) hold the same shards"),
        "one results file under two names": ([f"a={FIXTURE_DETS}", f"b={FIXTURE_DETS}", "--ann-file", FIXTURE_GT,
                                              "--out", out], "hold the same bytes"),
    }
    for case, (argv, message) in cases.items():
        code, err = run(capsys, "report", *argv)
        assert code == 2 and message in err and len(err.splitlines()) == 1, (case, err)
        assert not out.exists() and sorted(p.name for p in dump.rglob("*")) == before, case
    assert a_file.read_text() == "mine"


def test_page_08_leaves_out_calibration_of_logits_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A results file of logits: the report is written, its stderr warns, and page 08 keeps AP,
    oLRP and TIDE but leaves out the calibration sections, naming the file and the field."""
    out = tmp_path / "out"
    path = _results_variant(tmp_path, "logits", _as_logit)
    code = main(["report", str(path), "--ann-file", str(FIXTURE_GT), "--jobs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and f"retconf report: warning: {path}: 230 of 242 scores (95%) lie outside [0, 1]" in err
    page = _parse(out / "08_results.html")
    assert "LaECE" not in page.headers and "precision x IoU ECE" not in page.headers
    assert "AP50" in page.headers and "oLRP_loc" in page.headers
    text = _text(out / "08_results.html")
    assert f"Left out: {path}: 230 of 242 scores lie outside [0, 1] (field 'score'" in text
    assert "calibration needs probabilities" in text

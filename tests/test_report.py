"""`retconf report` on the quick preset's run: every notebook executes under papermill, and the
HTML holds the expected tables and figures (parsed, not grepped)."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from retconf.report import ReportError, make_reports, notebooks
from tests.report_tables import table_problems, tables

PAGES = ["01_misalignment", "02_alpha_sweep", "03_ablations", "04_main_results", "05_calibration", "07_postprocessing"]


class _Counter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.headers: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in_th = tag == "th"
        if tag == "img" and not dict(attrs).get("src", "").startswith("data:image/png;base64,"):
            raise AssertionError("figures must be embedded (self-contained HTML)")

    def handle_data(self, data):
        if self._in_th and data.strip():
            self.headers.append(data.strip())

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False


def _parse(path: Path) -> _Counter:
    c = _Counter()
    c.feed(path.read_text())
    return c


@pytest.fixture(scope="module")
def reports(quick_run: dict) -> Path:
    """The reports `retconf reproduce --preset quick` wrote (its last stage)."""
    return quick_run["reports"]


def test_eight_numbered_notebooks_with_a_parameters_cell() -> None:
    import nbformat

    paths = notebooks()
    assert [p.name[:3] for p in paths] == ["01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_"]
    for p in paths:
        nb = nbformat.read(str(p), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, p.name
        assert not any(c.cell_type == "code" and "\ndef " in "\n" + c.source for c in nb.cells), p.name


def _any_paired_seed(run: Path) -> bool:
    """Whether some seed of the run has the AP (of its dump) of RetinaNet and of another
    detector (page 04 then shows the paired differences)."""
    from analysis.measures.seeds import over_seeds, paired_deltas
    from analysis.studies.tables import live_ap

    per_seed = over_seeds(run, ["retinanet", "iou_aware", "retinanet_conf"], live_ap)
    pairs = [(m, "retinanet") for m in ("iou_aware", "retinanet_conf")]
    return not paired_deltas(per_seed, "model", "AP", pairs).empty


def _left_out(page: str) -> str:
    """The notes under a page's tables naming the columns left out as empty throughout
    (:func:`analysis.views.display.frame_html`)."""
    return " ".join(re.findall(r"Left out, empty throughout[^<]*", page))


@pytest.mark.parametrize("name, tables, images, headers", [
    # the quick run's one-epoch models keep no candidate with cls > 0.05: the per-level/size table is empty
    # the quick run's models keep no wrong survivor (NaN on both seeds): its all-NaN spread is left out
    # (and the NMS shift twice: pooled over boxes and per image, as the paper computes it)
    ("01_misalignment", 10, 5, ["condition", "seeds", "wrong-survivor rate", "spearman", "subset", "protocol", "obj − cls",
                               "well-localized", "cls<0.5", "shift"]),
    ("02_alpha_sweep", 3, 2, ["AP_paper", "AP", "resolution"]),  # α curve, paired α effects
    ("03_ablations", 11, 1, ["AP_delta", "AP", "loss", "AP IoU oracle", "AP IoU + label oracle",
                            "share", "agree", "order"]),
    # when the quick run's one-epoch RetinaNet detects nothing (no AP) there is no pair with it and
    # the page says so; when it does (the CPU's arithmetic decides), two paired tables follow
    # ... and the split of each pair's spread into evaluation and training noise (two seeds)
    ("04_main_results", 8, 1, ["ARs", "ARl", "source", "comparison", "seeds", "eval sd (bootstrap)", "seeds for ±0.01"]),
    ("05_calibration", 10, 6, ["LaECE", "D-ECE", "best by LaECE", "oLRP_loc", "thr_mean", "precision ECE"]),
])
def test_report_html_has_tables_and_figures(reports: Path, quick_run: dict, name: str, tables: int, images: int,
                                            headers: list[str]) -> None:
    page = _parse(reports / f"{name}.html")
    paired = name == "04_main_results" and _any_paired_seed(quick_run["run"])
    tables += 2 if paired else 0
    assert page.tags.get("table", 0) == tables
    assert page.tags.get("img", 0) == images
    left_out = _left_out((reports / f"{name}.html").read_text())
    for header in headers:  # a column empty throughout (e.g. no wrong survivor in a one-epoch model) is named
        assert header in page.headers or header in left_out, header
    assert not any(h.endswith("_sd") for h in page.headers)  # each spread shares its mean's cell
    assert not (reports / f"{name}.ipynb").exists()  # executed copies are kept only on failure
    text = (reports / f"{name}.html").read_text()
    if name == "04_main_results":
        assert ("nothing to compare" in text) != paired
    assert "rows ×" not in text and "<td>...</td>" not in text and "<th>...</th>" not in text  # never truncated
    assert "data-outside=" not in text  # no figure draws data outside its axes (analysis.views.display.figure_html)


@pytest.mark.parametrize("name", ["01_misalignment", "02_alpha_sweep", "03_ablations", "04_main_results",
                                  "05_calibration", "07_postprocessing"])
def test_every_page_has_a_title_and_a_link_to_the_index(reports: Path, name: str) -> None:
    import re

    text = (reports / f"{name}.html").read_text()
    title = re.search(r"<title>(.*?)</title>", text, re.S).group(1)
    assert title != "Notebook" and title.endswith("· retconf") and len(title) > 15, title
    assert '<a href="index.html">' in text


@pytest.mark.parametrize("name", ["01_misalignment", "02_alpha_sweep", "03_ablations", "04_main_results",
                                  "05_calibration", "07_postprocessing"])
def test_every_page_opens_with_findings_and_every_figure_has_alt_text(reports: Path, name: str) -> None:
    import re

    from retconf.report import page_findings

    text = (reports / f"{name}.html").read_text()
    verdicts = page_findings(reports / f"{name}.html")
    assert verdicts, "no findings block"
    # two seeds: every measured claim is judged on its interval; one judged on fewer seeds names
    # the seed it left out and why (a quick-run value can be undefined on a seed, e.g. a D-ECE
    # with no detection above its threshold, depending on the CPU's arithmetic)
    assert all(v in ("reproduced", "not reproduced", "holds", "does not hold", "inconclusive at 2 seeds",
                     "inconclusive at 1 seed", "not measured") for v in verdicts), verdicts
    items = re.findall(r'<li class="(?:paper|elsewhere|own)"[^>]*><b>inconclusive at 1 seed</b>(.*?)</li>', text)
    for item in items:
        assert re.search(r"seed \d+ left out: \S", item), item
    # the page's findings travel as data beside it, the same as the block shows
    import json

    data = json.loads((reports / f"{name}.json").read_text())
    shown = [html.unescape(v) for v in re.findall(r'<li class="(?:paper|elsewhere|own)"[^>]*><b>(.*?)</b>', text)]
    group = {"paper": 0, "elsewhere": 1, "own": 2}  # the block's order: counted here, counted elsewhere, own

    def kind(f: dict) -> str:
        return "own" if f["own"] else "paper" if f["home"] in ("", name) else "elsewhere"
    assert data["page"] == name and [f["verdict"] for f in sorted(data["findings"], key=lambda f: group[kind(f)])] == shown
    # every paper finding cites the registry with the paper's words; own questions sit apart, in their own words
    from analysis.paper.claims import load_claims

    claims = load_claims()
    for f in data["findings"]:
        if f["own"]:
            assert not f["claim_id"] and f["verdict"] not in ("reproduced", "not reproduced"), f
        else:
            assert claims[f["claim_id"]].quote == f["quote"] and f["home"] == claims[f["claim_id"]].home, f
            assert f'<code>{f["claim_id"]}</code>' in text
    if any(f["own"] for f in data["findings"]):
        own_block = html.unescape(text[text.index('class="own-questions"'):])
        assert all(f'<b>{f["verdict"]}</b> — {f["claim"]}' in own_block for f in data["findings"] if f["own"])
    assert text.index('class="findings"') < text.index("<table")  # the block opens the page
    for img in re.findall(r"<img [^>]*>", text):
        alt = re.search(r'alt="([^"]*)"', img)
        assert alt and len(alt.group(1)) > 20, img[:80]


def test_index_links_every_report_with_its_findings(reports: Path) -> None:
    import re

    text = (reports / "index.html").read_text()
    pages = re.findall(r'<li><a href="((?:0\d_)?[a-z_]+\.html)">[^<]+</a> — ([^<]+)</li>', text)
    assert [p for p, _ in pages] == [f"{n}.html" for n in ("01_misalignment", "02_alpha_sweep", "03_ablations",
                                                           "04_main_results", "05_calibration", "07_postprocessing",
                                                           "explore")]  # the explorer page (unnumbered), no findings
    # each page's line tallies that page's verdicts (which verdicts two one-epoch seeds reach is
    # the CPU's to decide: a page of own questions only may hold no "inconclusive" on one machine)
    from retconf.report import page_findings, verdict_line

    for p, line in pages:
        if p != "explore.html":
            assert page_findings(reports / p), p  # every numbered page has findings
            assert html.unescape(line) == verdict_line(page_findings(reports / p, own=False),
                                                       page_findings(reports / p, own=True)), p
    assert "retconf reproduce --preset quick --seeds 2 --full" in text
    # the registry as one table: every claim once, with its verdict on its home page or why it has none
    from analysis.paper.claims import load_claims

    claims = load_claims()
    table = text[text.index('<table class="registry">'):]
    rows = re.findall(r"<tr><td><code>([a-z0-9-]+)</code></td><td>.*?</td><td>.*?</td><td>(.*?)</td>", table)
    assert [r for r, _ in rows] == list(claims)
    import json

    counted = {}
    for p, _ in pages:
        if p != "explore.html":
            for f in json.loads((reports / p.replace(".html", ".json")).read_text())["findings"]:
                if f["claim_id"] and f["home"] == p[:-5]:
                    assert f["claim_id"] not in counted, f"{f['claim_id']} counted on {counted.get(f['claim_id'])} and {p}"
                    counted[f["claim_id"]] = html.escape(f["verdict"])
    for claim_id, shown in rows:
        c = claims[claim_id]
        if c.computed and (c.same_as or claim_id) in counted:
            assert shown.startswith(counted[c.same_as or claim_id]), (claim_id, shown)
        elif c.computed:  # its home page could not compute it on this run (e.g. no box with cls > 0.05)
            assert shown == "not shown in this report set", (claim_id, shown)
        else:
            assert shown == html.escape(c.status), (claim_id, shown)
    tally = re.search(r'<h2 id="claims">.*?<p>(.*?):', text, re.S).group(1)
    assert tally == html.escape(verdict_line(list(map(html.unescape, counted.values())))), tally
    assert text.index('class="headline"') < text.index("<h2>What was run</h2>")  # the headline opens the page
    assert text.count("resolvable to ± ") == 2  # both differences to RetinaNet, with their resolution
    for href in re.findall(r'href="([^"#]+)"', text):  # every link resolves
        assert (reports / href).resolve().exists(), href


@pytest.mark.parametrize("name", PAGES)
def test_every_table_follows_the_precision_rules(reports: Path, name: str) -> None:
    """AP and other fractions to 3 decimals, counts as integers (a mean over seeds: one decimal),
    no "1080.000", one header row, no all-NaN spread, nothing truncated."""
    assert table_problems((reports / f"{name}.html").read_text()) == []


def loss_tables(page: str) -> tuple[list[dict], list[dict]]:
    """The Table 2 (``loss`` without ``alpha``) and Table 3 (``loss`` and ``alpha``) tables of
    page 03, each as one dict per row keyed by header."""
    found = {}
    for head, rows, _ in tables(page):
        if "loss" in head:
            found["table3" if "alpha" in head else "table2"] = [dict(zip(head, r)) for r in rows]
    return found["table2"], found["table3"]


def assert_loss_tables_complete(page: str) -> None:
    """Table 2 has the paper's seven quality losses and Table 3 its two rows, each joined with
    the paper's numbers."""
    from analysis.paper import load_table

    table2, table3 = loss_tables(page)
    assert [r["loss"] for r in table2] == list(load_table("table2_conf_loss_ablation_r50")["loss"])
    assert len(table2) == 7
    assert [(r["loss"], float(r["alpha"])) for r in table3] == \
        [(r.loss, r.alpha) for r in load_table("table3_conf_loss_product_r50").itertuples()]
    for row in table2 + table3:  # a "mean ± sd" cell: its mean
        assert 0 <= float(row["AP_paper"]) <= 1 and 0 <= float(row["AP"].split(" ± ")[0]) <= 1, row


def test_loss_tables_of_a_full_run_have_every_row(reports: Path) -> None:
    assert_loss_tables_complete((reports / "03_ablations.html").read_text())


def test_ablations_report_on_a_fixture_run(tmp_path: Path) -> None:
    """Notebook 03 end to end on a fixture run with every loss ablation's dumps (no training):
    the loss tables have all their rows and every table follows the rules."""
    from retconf.ablations import TRAINED_VARIANTS
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run", ablations=tuple(TRAINED_VARIANTS))
    make_reports(run, tmp_path / "out", names=["03"])
    page = (tmp_path / "out" / "03_ablations.html").read_text()
    assert_loss_tables_complete(page)
    assert table_problems(page) == []
    assert page.count("<img ") == 1 and "Paired effect of the fusion mode" in page


def test_failing_notebook_names_the_cell_and_keeps_the_notebook(tmp_path: Path) -> None:
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"preset": "x", "run_dir": str(run), "seconds": {}, "metrics": {}}))
    with pytest.raises(ReportError, match=r"summary.json: missing field 'seeds'"):  # refused before any notebook
        make_reports(run, tmp_path / "out", names=["01"])
    (run / "summary.json").write_text(json.dumps({"preset": "x", "run_dir": str(run), "seconds": {}, "seeds": [0],
                                                  "metrics": {"0": {}}}))  # valid, but no dump
    with pytest.raises(ReportError, match=r"notebook 01_misalignment.ipynb failed in cell \d+: DumpError"):
        make_reports(run, tmp_path / "out", names=["01"])
    assert (tmp_path / "out" / "01_misalignment.ipynb").is_file()
    assert not (tmp_path / "out" / "01_misalignment.html").exists()


def test_main_results_show_mean_and_spread_over_two_seeds(reports: Path, quick_run: dict) -> None:
    import re

    page = (reports / "04_main_results.html").read_text()
    assert "mean ± sd (sample standard deviation) over 2 training seeds" in page
    first = re.search(r"<table.*?</table>", page, re.S).group(0)
    head = [h.strip() for h in re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", first, re.S)]  # not <thead>
    rows = [[c.strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", re.search(r"<tbody>(.*?)</tbody>", first, re.S).group(1), re.S)]
    assert head[0] == "model"  # no leftover 0, 1, 2 index column before the first real column
    table = {r[0]: dict(zip(head, r)) for r in rows}
    assert list(table) == ["retinanet", "iou_aware", "retinanet_conf"]  # the run's detector order
    conf = table["retinanet_conf"]
    assert conf["seeds"] == "2"
    # two seeds give a spread: "mean ± sd" (one seed shows the mean alone), here of the
    # cls-only AP of each seed's dump, computed again from the dumps
    from analysis.measures.seeds import over_seeds
    from analysis.studies.tables import cls_only_ap

    per_seed = over_seeds(quick_run["run"], ["retinanet_conf"], cls_only_ap)
    assert per_seed["seed"].tolist() == [0, 1]
    ap = per_seed["AP"].to_numpy()
    assert conf["AP"] == f"{ap.mean():.3f} ± {ap.std(ddof=1):.3f}"


def test_fingerprint_follows_the_dumps_and_notebook(tmp_path: Path) -> None:
    import json

    from retconf.report import inputs_fingerprint, run_digest

    (tmp_path / "summary.json").write_text(json.dumps({"seeds": [0], "metrics": {"0": {}}, "seconds": {"a": 1}}))
    meta = tmp_path / "seed_0" / "dumps" / "retinanet" / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"checkpoint_sha256": "1"}')
    nb = notebooks()[0]
    fp = inputs_fingerprint(nb, {"run_dir": "r"}, False, run_digest(tmp_path))
    # the timing of the report stage itself and which stages were cached do not matter
    (tmp_path / "summary.json").write_text(json.dumps({"seeds": [0], "metrics": {"0": {}},
                                                       "seconds": {"a": 1, "reports": 9}, "cached_this_run": ["x"]}))
    assert inputs_fingerprint(nb, {"run_dir": "r"}, False, run_digest(tmp_path)) == fp
    assert inputs_fingerprint(nb, {"run_dir": "r"}, True, run_digest(tmp_path)) != fp
    assert inputs_fingerprint(notebooks()[1], {"run_dir": "r"}, False, run_digest(tmp_path)) != fp
    meta.write_text('{"checkpoint_sha256": "2"}')
    assert inputs_fingerprint(nb, {"run_dir": "r"}, False, run_digest(tmp_path)) != fp


def test_kill_during_reporting_then_rerun_keeps_finished_reports(quick_run: dict, tmp_path: Path) -> None:
    """kill -9 (the whole process group, kernels included) while the second report is being
    written (its page is written, not yet renamed into place): the finished first page is whole,
    and the rerun keeps it and writes the second. Two pages (``--only 01 02``): the other pages
    and the explorer would add a minute and a half to the suite and nothing to the check."""
    import os
    import signal
    import subprocess
    import sys

    from retconf.report import report_fingerprint
    from tests.conftest import ROOT
    from tests.pausing_cli import wait_for_pause

    out, marker, log = tmp_path / "reports", tmp_path / "paused", tmp_path / "report.log"
    args = ["report", str(quick_run["run"]), "--out", str(out), "--jobs", "1",  # in order: a fixed kill point
            "--only", "01", "02"]
    with open(log, "w") as err:  # a file, not a pipe nobody reads while waiting
        proc = subprocess.Popen([sys.executable, "-m", "tests.pausing_cli", "02_alpha_sweep.html", str(marker),
                                 *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        wait_for_pause(proc, marker, log)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "index.html").exists()  # written last
    finished = sorted(out.glob("*.html"))
    assert [p.name for p in finished] == ["01_misalignment.html"]
    page = finished[0]  # complete, with its inputs fingerprint
    assert page.read_text().rstrip().endswith("</html>") and report_fingerprint(page)

    again = subprocess.run([sys.executable, "-m", "retconf.cli", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 reports written, 1 up to date and kept" in again.stdout
    assert sorted(p.name for p in out.iterdir()) == [  # no executed notebook or temporary file left
        "01_misalignment.html", "01_misalignment.json", "02_alpha_sweep.html", "02_alpha_sweep.json", "index.html"]
    assert (out / "index.html").read_text().count('<li><a href="0') == 2


def test_index_keeps_pages_a_partial_report_did_not_redo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`retconf report --only 05` rewrites the index with every numbered page present in OUT."""
    import json

    import retconf.report as report

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"seeds": [0], "metrics": {"0": {}}, "seconds": {}}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_misalignment.html").write_text("<html></html>")

    def fake_run(path, out_dir, parameters, show_code=False, fingerprint="", note=""):
        target = out_dir / f"{path.stem}.html"
        target.write_text("<html></html>")
        return target

    monkeypatch.setattr(report, "run_notebook", fake_run)
    made = report.make_reports(run, out, names=["05"])
    assert [r.path.name for r in made] == ["05_calibration.html"]
    index = (out / "index.html").read_text()
    assert "01_misalignment.html" in index and "05_calibration.html" in index
    assert "02_alpha_sweep.html" not in index


def test_calibration_report_on_a_fixture_run(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Notebook 05 end to end on a two-seed run made from the calibration fixture (no training):
    `retconf report --only 05` writes the page, indexed; the kernel's own log (its start-up
    warning, the KeyboardInterrupt it logs when stopped) stays out of the output."""
    from tests.analysis.quality_cases import write_fake_run

    run = write_fake_run(tmp_path / "run")
    made = make_reports(run, tmp_path / "out", names=["05"], jobs=1)
    captured = capfd.readouterr()
    assert "[IPKernelApp]" not in captured.err + captured.out
    assert [r.path.name for r in made] == ["05_calibration.html"]
    page = _parse(tmp_path / "out" / "05_calibration.html")
    assert page.tags.get("table", 0) == 10 and page.tags.get("img", 0) == 6
    for header in ("LaECE", "best by LaECE", "oLRP_loc", "precision x IoU ECE"):
        assert header in page.headers, header
    page = (tmp_path / "out" / "05_calibration.html").read_text()
    assert "mean ± sd (sample standard deviation) over 2 training seeds" in page
    assert table_problems(page) == []
    assert "05_calibration.html" in (tmp_path / "out" / "index.html").read_text()


def test_families_page_of_a_run_with_other_families(tmp_path: Path) -> None:
    """The cross-family page runs for a run with families beyond the paper's three (and only
    then): one row per family, the α sweep for heads with a separate quality score only,
    findings per family with one."""
    from tests.analysis.quality_cases import write_fake_run

    plain = write_fake_run(tmp_path / "plain", seeds=(0,))
    assert [r.path.name for r in make_reports(plain, tmp_path / "plain-out", names=["06"])] == []
    run = write_fake_run(tmp_path / "run", families=("fcos", "gfl", "tood"))
    made = make_reports(run, tmp_path / "out", names=["06"])
    assert [r.path.name for r in made] == ["06_families.html"]
    html_text = (tmp_path / "out" / "06_families.html").read_text()
    assert table_problems(html_text) == []
    try:  # the key table and the correlation table each fit a 1280 px window
        import playwright  # noqa: F401

        from tests.test_report_browser import CHROMIUM, wide_tables
        if CHROMIUM:
            assert wide_tables([tmp_path / "out" / "06_families.html"]) == {"06_families.html": []}
    except ImportError:
        pass
    page = _parse(tmp_path / "out" / "06_families.html")
    left_out = _left_out(html_text)
    for header in ("ranking~IoU", "AP IoU oracle", "wrong-survivor rate", "quality score", "train s"):
        # a column empty throughout (the fake run's dumps keep no wrong survivor) is named under its table
        assert header in page.headers or header in left_out, header
    assert page.tags.get("img", 0) == 2
    # one findings pair per family with a separate quality score (not RetinaNet, not GFL); RetinaNet-Conf's
    # ranking gain is the paper's Table 3 claim, shown here and counted on page 03
    for model in ("iou_aware", "fcos", "tood"):
        assert f"{model}: ranking by its fused score beats ranking by cls alone" in html_text
    assert "<code>t3-product-gain-ce</code>" in html_text and 'href="03_ablations.html"' in html_text
    for model in ("retinanet:", "gfl:"):
        assert f"{model} ranking by its fused score" not in html_text
    assert "sqrt(cls·q)" in html_text and "cls·q (after top-k)" in html_text
    assert 'class="run-note"' not in html_text  # the families page is this run's own
    make_reports(run, tmp_path / "out", names=["05"])  # a paper page of a families run says what it is
    page05 = (tmp_path / "out" / "05_calibration.html").read_text()
    assert "re-analyses the paper's three trainings of a families run with its 2 seeds" in page05


def test_families_note_only_on_paper_pages_of_a_families_run(tmp_path: Path) -> None:
    from retconf.report import families_note

    families = {"seeds": [0, 1], "detectors": ["retinanet", "fcos"], "metrics": {}}
    paper = {"seeds": [0, 1], "detectors": ["retinanet", "iou_aware", "retinanet_conf"], "metrics": {}}
    out = tmp_path / "families"
    assert "its 2 seeds" in families_note(families, Path("01_misalignment.ipynb"), out)
    assert "default run" in families_note(families, Path("01_misalignment.ipynb"), out)
    assert "../tiny/" not in families_note(families, Path("01_misalignment.ipynb"), out)  # no such set here
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "01_misalignment.html").write_text("x")
    assert 'href="../tiny/01_misalignment.html"' in families_note(families, Path("01_misalignment.ipynb"), out)
    assert families_note(families, Path("06_families.ipynb"), out) == ""
    assert families_note(paper, Path("01_misalignment.ipynb"), out) == ""


def test_verdict_line_and_command_of(tmp_path: Path) -> None:
    from analysis.paper.findings import claim, not_measured, render
    from retconf.report import command_of, page_findings, verdict_line

    page = tmp_path / "p.html"
    page.write_text("<html><body>" + render([claim("a", [0.1, 0.11, 0.12], "d"), claim("b", [0.1, -0.2, 0.3], "d"),
                                             not_measured("c", "why")]) + "<table></table></body></html>")
    verdicts = page_findings(page)
    assert verdicts == ["reproduced", "inconclusive at 3 seeds", "not measured"]
    assert verdict_line(verdicts) == "1 reproduced, 1 inconclusive at 3 seeds, 1 not measured"
    assert verdict_line([]) == "no paper claim on this page"
    own = tmp_path / "own.html"  # the project's own questions: their own words and their own tally
    own.write_text("<html><body>" + render([claim("a", [0.1, 0.11, 0.12], "d"), claim("q", [0.1, 0.11, 0.12], "d", own=True),
                                            claim("r", [-0.1, -0.11, -0.12], "d", own=True)]) + "</body></html>")
    assert page_findings(own) == ["reproduced", "holds", "does not hold"]
    assert page_findings(own, own=False) == ["reproduced"] and page_findings(own, own=True) == ["holds", "does not hold"]
    assert verdict_line(page_findings(own, own=False), page_findings(own, own=True)) == \
        "1 reproduced; own questions: 1 holds, 1 does not hold"
    assert verdict_line([], ["holds"]) == "no paper claim on this page; own questions: 1 holds"
    assert page_findings(tmp_path / "missing.html") == []
    assert command_of({"preset": "tiny", "seeds": [0, 1, 2], "ablations": []}) == "retconf reproduce --preset tiny --seeds 3"
    assert command_of({"preset": "tiny", "seeds": [0], "ablations": ["conf_l1"]}).endswith("--seeds 1 --full")
    paper = ["retinanet", "iou_aware", "retinanet_conf"]
    assert command_of({"preset": "tiny", "seeds": [0, 1], "detectors": paper}).endswith("--seeds 2")
    assert command_of({"preset": "tiny", "seeds": [0, 1], "detectors": [*paper, "fcos", "tood"]}).endswith(
        "--seeds 2 --detectors retinanet iou_aware retinanet_conf fcos tood")


def test_index_links_the_other_report_sets_and_the_benchmarks(tmp_path: Path) -> None:
    """reports/tiny's index links reports/tiny-full (a retconf report set) and every benchmark
    page in reports/benchmarks, and nothing else beside it; every link resolves."""
    import re

    from retconf.report import index_html

    reports = tmp_path / "reports"
    tiny, full, bench, other = (reports / n for n in ("tiny", "tiny-full", "benchmarks", "notes"))
    for d in (tiny, full, bench, other):
        d.mkdir(parents=True)
    summary = {"preset": "tiny", "seeds": [0, 1, 2], "detectors": ["retinanet"], "seconds": {}}
    (full / "index.html").write_text(index_html([], Path("runs/tiny-full"), summary, full))
    (other / "index.html").write_text("<html>someone else's page</html>")
    (bench / "rescore_floor.md").write_text("# floor")
    text = index_html([], Path("runs/tiny"), summary, tiny)
    links = re.findall(r'href="([^"#]+)"', text)
    assert "../tiny-full/index.html" in links and "../benchmarks/rescore_floor.md" in links
    assert not any("notes" in h for h in links)
    assert "Model and schedule: ResNet-18 + FPN" in text and "8 epochs" in text  # from the tiny configs
    for href in links:
        if not href.startswith("0"):  # the numbered pages of this set are not written here
            assert (tiny / href).resolve().exists(), href


def test_findings_test_the_papers_claims_as_it_states_them(reports: Path) -> None:
    """Each page cites the registry's claims it is the home of, with the registry's direction:
    the diagnosis on RetinaNet and the per-image NMS shift (01); the α optimum (02); the product
    and the plain product, both of the paper's conflicting statements on it (03); both of the
    paper's conflicting statements on IoU-aware (04); the project's own questions in their own
    words (05, and the contrasts the paper does not draw)."""
    import json

    from analysis.paper.claims import load_claims

    claims = load_claims()

    def cited(name: str) -> dict[str, dict]:
        data = json.loads((reports / f"{name}.json").read_text())
        return {f["claim_id"]: f for f in data["findings"] if f["claim_id"]}

    p01 = cited("01_misalignment")
    # (the quick run's models keep no candidate with cls > 0.05 on some seeds: the low-cls shares are
    # absent there, so only claims on the other populations are required)
    assert {"intro-nms-hurts-localization-more", "t5-iou-prediction-more-accurate", "intro-higher-cls-worse-iou",
            "abs-conf-eases-misalignment"} <= set(p01)
    assert "per-image mean" in p01["intro-nms-hurts-localization-more"]["evidence"]  # the paper's averaging
    assert {"t5-alpha-optimum", "t5-iou-aware-alpha-optimum"} <= set(cited("02_alpha_sweep"))
    p03 = cited("03_ablations")
    assert {"t3-product-gain-ce", "t4-mul-beats-cls", "s3-direct-product-may-damage"} <= set(p03)
    assert p03["t4-mul-beats-cls"]["values"] == p03["s3-direct-product-may-damage"]["values"]  # one number, two statements
    p04 = cited("04_main_results")
    assert {"t1-iou-aware-improves-ap", "s3-iou-aware-same-classification", "t1-conf-beats-iou-aware",
            "t1-conf-ap50-falls", "t1-iou-aware-ap75-rises"} <= set(p04)
    assert "s3-iou-aware-same-classification" in claims["t1-iou-aware-improves-ap"].conflicts
    assert p04["s3-iou-aware-same-classification"]["evidence"].endswith("equal means within ± 0.001; the paper's value: +0.002")
    for f in p04.values():  # a restatement's finding is its claim's, and says so
        assert set(f["also"]) == {c.id for c in claims.values() if c.same_as == f["claim_id"]}
    page05 = (reports / "05_calibration.html").read_text()
    assert '<li class="own"><b>' in page05 and "<b>reproduced</b>" not in page05 and not cited("05_calibration")


def test_headline_html_says_what_each_difference_resolves() -> None:
    from retconf.report import headline_html

    nan = float("nan")
    rows = [{"what": "AP retinanet", "mean": 0.3621, "sd": 0.0351, "seeds": 3, "half_width": nan, "seeds_to_resolve": nan},
            {"what": "AP retinanet_conf − retinanet", "mean": 0.028, "sd": 0.038, "seeds": 3, "half_width": 0.094,
             "seeds_to_resolve": 10},
            {"what": "AP iou_aware − retinanet", "mean": -0.02, "sd": 0.002, "seeds": 3, "half_width": 0.005,
             "seeds_to_resolve": nan},
            {"what": "AP x − retinanet", "mean": 0.01, "sd": nan, "seeds": 1, "half_width": nan, "seeds_to_resolve": nan}]
    text = headline_html(rows)
    assert "AP retinanet = 0.362 ± 0.035 (sd over 3 seeds)" in text
    assert ("AP retinanet_conf − retinanet = +0.028, resolvable to ± 0.094 at 3 seeds (95 % paired t): not resolved; "
            "about 10 seeds would resolve it at this spread") in text
    assert "AP iou_aware − retinanet = -0.020, resolvable to ± 0.005 at 3 seeds (95 % paired t): resolved<" in text
    assert "AP x − retinanet = +0.010 on one seed (no spread: nothing is resolved)" in text
    assert headline_html([]) == ""


def test_model_line_says_the_backbone_is_frozen() -> None:
    from retconf.presets import PRESETS
    from retconf.report import model_and_schedule

    assert model_and_schedule(PRESETS["tiny"]).endswith("then frozen (only neck and heads train)")


def test_every_notebook_cell_has_a_unique_id() -> None:
    """nbformat 4.5 cells carry ids; a cell without one makes every batch run warn
    (MissingIDFieldWarning) and will be an error in later nbformat versions."""
    import json

    for path in notebooks():
        cells = json.loads(path.read_text())["cells"]
        ids = [c.get("id") for c in cells]
        assert None not in ids and len(set(ids)) == len(ids), path.name


def test_a_running_page_reports_what_it_computes_the_dumps_done_and_the_time_left() -> None:
    import json

    from retconf.report import progress_line

    def line(done: int, total: int, what: str, t: float) -> str:
        return json.dumps({"done": done, "total": total, "what": what, "time": t})

    assert progress_line("07_postprocessing", [], 0.0) is None
    lines = [line(0, 3, "alpha_rows", 0.0), line(3, 3, "alpha_rows", 9.0),
             line(0, 6, "dump_postprocess_rows", 10.0), line(1, 6, "dump_postprocess_rows", 40.0)]
    assert progress_line("07_postprocessing", lines, 70.0) == (
        "07_postprocessing: dump_postprocess_rows, 1/6 dumps, 60 s, about 300 s left")
    assert progress_line("07_postprocessing", lines[:2], 9.0) == "07_postprocessing: alpha_rows, 3/3 dumps, 9 s"
    # a page reading a dump shard by shard: the shards of the next dump count in the estimate
    shard = json.dumps({"done": 1, "total": 3, "what": "dump_postprocess_rows", "time": 40.0, "shard": [5, 10]})
    assert progress_line("07_postprocessing", [line(0, 3, "dump_postprocess_rows", 10.0), shard], 40.0) == (
        "07_postprocessing: dump_postprocess_rows, 1/3 dumps and 5/10 shards of the next, 30 s, about 30 s left")
    first = json.dumps({"done": 0, "total": 2, "what": "alpha_rows", "time": 30.0, "shard": [2, 10]})
    assert progress_line("02_alpha_sweep", [line(0, 2, "alpha_rows", 10.0), first], 30.0) == (
        "02_alpha_sweep: alpha_rows, 0/2 dumps and 2/10 shards of the next, 20 s, about 180 s left")


def test_a_page_reading_shards_notes_each_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """over_seeds gives a shard reader a DumpShards that notes each shard read to the progress file."""
    import json

    from analysis.inputs.io import DumpShards
    from analysis.measures import seeds

    class Two(DumpShards):
        def __iter__(self):
            for i in range(2):
                yield i
                if self.on_shard:
                    self.on_shard(i + 1, 2)

    monkeypatch.setattr(seeds, "load_seed_dump", lambda run, seed, model, by_shard=False: Two(Path(model), {"num_shards": 2}))
    monkeypatch.setenv(seeds.PROGRESS_ENV, str(tmp_path / "p"))
    seeds.over_seeds("run", ["a"], seeds.by_shard(lambda model, dump: {"n": len(list(dump))}), seeds=[0])
    records = [json.loads(x) for x in (tmp_path / "p").read_text().splitlines()]
    assert [(r["done"], r.get("shard")) for r in records] == [(0, None), (0, [1, 2]), (0, [2, 2]), (1, None)]


def test_fingerprint_follows_the_analysis_data_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages read data files of the analysis package (the claims registry, the measured
    numeric-path shift that marks verdicts fragile): changing one must redo the pages, as a
    change of its code does."""
    import json

    from retconf import report

    (tmp_path / "summary.json").write_text(json.dumps({"seeds": [0], "metrics": {"0": {}}}))
    pkg = tmp_path / "pkg"
    (pkg / "paper").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "numeric_path.json").write_text('{"path_shift_ap": 0.0146}')
    (pkg / "paper" / "claims.csv").write_text("id\nt1\n")
    monkeypatch.setattr(report, "ANALYSIS_ROOT", pkg)
    before = report.run_digest(tmp_path)
    for f, text in ((pkg / "numeric_path.json", '{"path_shift_ap": 0.02}'), (pkg / "paper" / "claims.csv", "id\nt2\n"),
                    (pkg / "a.py", "x = 2\n")):
        f.write_text(text)
        after = report.run_digest(tmp_path)
        assert after != before, f.name
        before = after
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.json").write_text("{}")  # a cache is not an input
    assert report.run_digest(tmp_path) == before

"""`retconf report` on the quick preset's run: every notebook executes under papermill, and the
HTML holds the expected tables and figures (parsed, not grepped)."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from retconf.report import ReportError, make_reports, notebooks


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


def test_four_numbered_notebooks_with_a_parameters_cell() -> None:
    import nbformat

    paths = notebooks()
    assert [p.name[:3] for p in paths] == ["01_", "02_", "03_", "04_"]
    for p in paths:
        nb = nbformat.read(str(p), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, p.name
        assert not any(c.cell_type == "code" and "\ndef " in "\n" + c.source for c in nb.cells), p.name


@pytest.mark.parametrize("name, tables, images, header", [
    ("01_misalignment", 4, 5, "condition"),
    ("02_alpha_sweep", 2, 1, "AP_paper"),
    ("03_ablations", 2, 0, "AP_delta"),
    ("04_main_results", 2, 0, "AP_delta"),
])
def test_report_html_has_tables_and_figures(reports: Path, name: str, tables: int, images: int,
                                            header: str) -> None:
    page = _parse(reports / f"{name}.html")
    assert page.tags.get("table", 0) == tables
    assert page.tags.get("img", 0) == images
    assert header in page.headers
    assert not (reports / f"{name}.ipynb").exists()  # executed copies are kept only on failure


def test_index_links_every_report(reports: Path) -> None:
    page = _parse(reports / "index.html")
    assert page.tags.get("a") == 4


def test_failing_notebook_names_the_cell_and_keeps_the_notebook(tmp_path: Path) -> None:
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"preset": "x", "run_dir": str(run), "seconds": {}, "metrics": {}}))
    with pytest.raises(ReportError, match=r"notebook 01_misalignment.ipynb failed in cell \d+: DumpError"):
        make_reports(run, tmp_path / "out", names=["01"])
    assert (tmp_path / "out" / "01_misalignment.ipynb").is_file()
    assert not (tmp_path / "out" / "01_misalignment.html").exists()

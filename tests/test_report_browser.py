"""A real headless browser (Debian's Chromium; .ci/run installs it) opens the index and one
report without console errors, and the pages need nothing from the network."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def _open(page: Path, profile: Path) -> tuple[str, list[str]]:
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res.stdout, console


@pytest.mark.parametrize("name", ["index.html", "01_misalignment.html", "02_alpha_sweep.html"])
def test_pages_open_without_console_errors(quick_run: dict, tmp_path: Path, name: str) -> None:
    page = quick_run["reports"] / name
    assert 'src="http' not in page.read_text()  # self-contained
    dom, console = _open(page, tmp_path / "profile")
    assert console == []
    assert "<table" in dom if name != "index.html" else dom.count('<a href="0') >= 5


@pytest.mark.parametrize("name", ["index.html", "01_misalignment.html", "02_alpha_sweep.html", "03_ablations.html",
                                  "04_main_results.html", "05_calibration.html"])
def test_screenshot_of_each_page_is_neither_blank_nor_absurdly_long(quick_run: dict, tmp_path: Path, name: str) -> None:
    """A 1280 px wide screenshot (kept in test-artefacts/screenshots/) shows content, and the
    printed page is at most 60 A4 pages long."""
    import matplotlib.image as mpimg

    from tests.conftest import ROOT

    page = quick_run["reports"] / name
    shots = ROOT / "test-artefacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    png, pdf = shots / name.replace(".html", ".png"), tmp_path / "page.pdf"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    for extra in ([f"--screenshot={png}", "--window-size=1280,1600"], [f"--print-to-pdf={pdf}", "--no-pdf-header-footer"]):
        res = subprocess.run([*common, *extra, page.as_uri()], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
    pixels = mpimg.imread(png)
    assert pixels.shape[1] == 1280 and pixels.std() > 0.02  # not a blank page
    pages = pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(b"/Type /Pages")
    assert 1 <= pages <= 60, pages


def test_the_check_sees_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>throw new Error('broken page');</script></body></html>")
    _, console = _open(page, tmp_path / "profile")
    assert any("broken page" in line for line in console)


# Every report table must end inside a 1280 px wide window: the width a researcher's laptop
# browser gives a page, and the one the screenshots are taken at. A table in a collapsed
# section (opened for the check) may be wider: its section scrolls sideways, and the section
# must fit.
PAGE_WIDTH = 1280
_WIDE_TABLES = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  return Array.from(document.querySelectorAll('table')).map((t, i) => {
    const r = (t.closest('details') || t).getBoundingClientRect();
    return {i, right: Math.round(r.right), head: Array.from(t.querySelectorAll('th')).slice(0, 4).map(x => x.innerText).join(' | ')};
  }).filter(t => t.right > window.innerWidth);
}"""


def wide_tables(pages: list[Path], width: int = PAGE_WIDTH) -> dict[str, list[dict]]:
    """For each page, the tables whose right edge lies beyond a ``width`` px window once every
    collapsed section is open (Playwright driving Debian's Chromium)."""
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        for path in pages:
            page.goto(path.resolve().as_uri())
            out[path.name] = page.evaluate(_WIDE_TABLES)
        browser.close()
    return out


def test_every_table_fits_a_1280_px_window(quick_run: dict) -> None:
    pytest.importorskip("playwright", reason="playwright is not installed (pip install playwright)")
    pages = sorted(quick_run["reports"].glob("0*.html"))
    assert len(pages) >= 5
    assert {name: wide for name, wide in wide_tables(pages).items() if wide} == {}


def test_the_width_check_sees_a_wide_table(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="playwright is not installed (pip install playwright)")
    page = tmp_path / "wide.html"
    cells = "".join(f"<th>column number {i}</th>" for i in range(40))
    page.write_text(f"<html><body><table><tr>{cells}</tr></table></body></html>")
    assert len(wide_tables([page])["wide.html"]) == 1
    from analysis.views.display import details_html  # the same table collapsed scrolls inside its section

    page.write_text(f"<html><body>{details_html(f'<table><tr>{cells}</tr></table>', 'x')}</body></html>")
    assert wide_tables([page])["wide.html"] == []

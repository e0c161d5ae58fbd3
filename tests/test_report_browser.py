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

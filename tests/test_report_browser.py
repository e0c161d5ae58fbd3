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
    assert "<table" in dom if name != "index.html" else dom.count("<a ") == 5


def test_the_check_sees_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>throw new Error('broken page');</script></body></html>")
    _, console = _open(page, tmp_path / "profile")
    assert any("broken page" in line for line in console)

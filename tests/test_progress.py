"""Progress bars: a bar on a terminal, a few whole lines in a log."""
from __future__ import annotations

import subprocess
import sys


def test_a_log_gets_a_line_per_tenth_not_every_refresh() -> None:
    code = "from retconf.progress import progress\nfor i in progress(range(5000), desc='work'): pass\n"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    lines = err.splitlines()
    assert "\r" not in err
    assert 10 <= len(lines) <= 13, lines  # 0 %, 10 % ... 100 % (and tqdm's closing line)
    assert lines[-1].startswith("work: 100%")

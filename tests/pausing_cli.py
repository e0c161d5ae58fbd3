"""`retconf` that stops at a chosen file write and waits to be killed, for the kill tests.

    python -m tests.pausing_cli NAME MARKER retconf-arguments...

runs ``retconf.cli.main(retconf-arguments)``; when the run is about to move a finished file named
NAME into place (every output is written to a temporary file and then renamed with
``os.replace``, see retconf/io.py and SafeRunner.save_checkpoint), it writes its pid to MARKER
and sleeps instead. The test waits for MARKER and kills the process there: the kill point is the
same on every machine, however fast or loaded, and no poll can arrive too late. A run that ends
without reaching NAME exits with status 99 (the kill test then fails, naming it).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    name, marker, *cli_args = argv
    replace = os.replace

    def pausing_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == name:
            Path(marker).write_text(str(os.getpid()))
            while True:  # until killed
                time.sleep(60)
        return replace(src, dst, *args, **kwargs)

    os.replace = pausing_replace
    from retconf.cli import main as cli_main

    code = cli_main(cli_args)
    print(f"pausing_cli: the run ended (status {code}) without writing {name}", file=sys.stderr)
    return 99


def wait_for_pause(proc, marker: Path, log: Path, timeout: float = 300) -> None:
    """Block until the child started with :func:`main` has paused (MARKER exists); fail with the
    tail of its log if it ended or did not get there within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            state = "ended" if proc.poll() is not None else f"did not pause in {timeout} s"
            raise AssertionError(f"the run {state} before the kill point: {log.read_text()[-3000:]}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

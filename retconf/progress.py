"""Progress bars for terminals, a line per tenth of the work in logs.

On a terminal :func:`progress` is a plain tqdm bar. When stderr is not a terminal (papermill,
CI, ``> log 2>&1``) tqdm would write every refresh into the log as ``\\r``-separated updates;
there it prints one whole line per 10 % of the work instead.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


class _Lines:
    """A file for tqdm that turns its ``\\r`` redraws into whole lines on stderr."""

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            print(s, file=sys.stderr, flush=True)

    def flush(self) -> None:
        sys.stderr.flush()


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False) -> Any:
    """A tqdm bar over ``iterable`` (or updated by hand with ``total``); see the module docstring."""
    from tqdm import tqdm

    if disable or sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable)
    n = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    return tqdm(iterable, total=n, desc=desc, unit=unit, file=_Lines(), ascii=True, mininterval=0,
                maxinterval=float("inf"), miniters=max(1, (n or 10) // 10))

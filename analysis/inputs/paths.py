"""Paths as a run directory or a dump names them: relative to the current directory, or else to
the source checkout (the bottom of :mod:`analysis.inputs`; :mod:`analysis.inputs.io` and
:mod:`analysis.inputs.runs` both stand on it)."""
from __future__ import annotations

from pathlib import Path


def run_path(run_dir: str | Path) -> Path:
    """A run directory as given, or relative to the source checkout when it is found there and
    not from the current directory (notebooks opened in JupyterLab run inside ``notebooks/``).
    In a non-editable install there is no checkout: the path is taken as given."""
    path = Path(run_dir)
    if path.is_absolute() or path.exists():
        return path
    in_checkout = Path(__file__).resolve().parents[2] / path
    return in_checkout if in_checkout.exists() else path

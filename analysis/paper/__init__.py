"""The paper's tables as DataFrames (CSV files beside this module) and its claims registry
(:mod:`analysis.paper.claims`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .claims import PaperClaim, load_claims, paper_claim

__all__ = ["TABLES", "PaperClaim", "load_claims", "load_table", "paper_claim"]

HERE = Path(__file__).resolve().parent
TABLES = tuple(sorted(p.stem for p in HERE.glob("*.csv") if p.stem != "claims"))  # claims.csv: the registry


def load_table(name: str) -> pd.DataFrame:
    """One table by file stem, e.g. ``table5_alpha_sweep_r50``; see :data:`TABLES`."""
    if name not in TABLES:
        raise ValueError(f"paper table {name!r} is not one of {TABLES}")
    return pd.read_csv(HERE / f"{name}.csv")

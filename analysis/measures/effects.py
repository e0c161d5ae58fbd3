"""Paired effects against a baseline, for figures: per seed, a metric of every setting (α, a
fusion mode) minus the same seed's metric at the baseline setting (α = 0, ``cls``), and the mean
of those differences with its 95 % paired t interval.

Glossary: S seeds, V values of the compared setting (the baseline included), G groups (e.g.
detectors) given by ``by``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .seeds import interval


def _groups(df: pd.DataFrame, by: Sequence[str]) -> list[tuple[dict, pd.DataFrame]]:
    """(``by`` column values, rows) per group of ``df`` in first-appearance order; one group of
    all rows when ``by`` is empty."""
    if not by:
        return [({}, df)]
    return [(dict(zip(by, k if isinstance(k, tuple) else (k,))), g) for k, g in df.groupby(list(by), sort=False)]


def deltas_to_baseline(per_seed: pd.DataFrame, key: str, metric: str, baseline: Any,
                       by: Sequence[str] = ()) -> pd.DataFrame:
    """Per-seed paired differences ``metric(key = v) − metric(key = baseline)`` for every value
    ``v`` of ``key`` (the baseline's own rows are 0), within each ``by`` group.

    Args:
        per_seed: G·S·V rows with ``seed``, ``key``, ``metric`` and the ``by`` columns (e.g.
            from :func:`analysis.measures.seeds.over_seeds`).
        baseline: the ``key`` value every other is compared with.
    Returns:
        rows ``by…, key, seed, delta`` (G·S·V at most), values of ``key`` in order of first
        appearance; a seed without the baseline or without ``v`` has no row for ``v``; a group
        without the baseline has none.
    """
    frames = []
    for values, g in _groups(per_seed, by):
        wide = g.pivot_table(index="seed", columns=key, values=metric, aggfunc="first")
        if baseline not in wide:
            continue
        order = [v for v in dict.fromkeys(g[key]) if v in wide]
        d = wide[order].sub(wide[baseline], axis=0).reset_index()
        long = d.melt(id_vars="seed", var_name=key, value_name="delta").dropna(subset=["delta"])
        frames.append(long.assign(**values)[[*by, key, "seed", "delta"]])
    if not frames:
        return pd.DataFrame(columns=[*by, key, "seed", "delta"])
    return pd.concat(frames, ignore_index=True)


def delta_intervals(deltas: pd.DataFrame, key: str, by: Sequence[str] = (),
                    confidence: float = 0.95) -> pd.DataFrame:
    """Mean of the per-seed differences of :func:`deltas_to_baseline` with its two-sided paired
    t interval (:func:`analysis.measures.seeds.interval`), per ``by`` group and ``key`` value.

    Args:
        deltas: rows ``by…, key, seed, delta``.
    Returns:
        rows ``by…, key, seeds, mean, lo, hi`` (G·V; ``lo``/``hi`` NaN for one seed), in the
        order of ``deltas``.
    """
    rows = []
    for values, g in _groups(deltas, [*by, key]):
        mean, _, half, n = interval(g["delta"].to_numpy(dtype=float), confidence)
        rows.append({**values, "seeds": n, "mean": mean, "lo": mean - half, "hi": mean + half})
    return pd.DataFrame(rows, columns=[*by, key, "seeds", "mean", "lo", "hi"])

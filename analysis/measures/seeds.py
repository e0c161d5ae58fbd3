"""Results over training seeds: every comparison of detectors is computed per seed, then shown
as mean and spread (sample standard deviation) with the number of seeds.

A run directory from ``retconf reproduce --seeds N`` holds ``seed_<s>/dumps/<model>/`` for
s = 0 .. N-1 and a ``summary.json`` listing them (the layout: :mod:`analysis.inputs.runs`).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import numpy as np
import pandas as pd

from ..inputs.io import Dump, DumpShards, dump_shards, load_dump
from ..inputs.runs import dump_dir, input_entry, input_kind, load_summary, run_path
from .results import Results, load_results

PerDump = Callable[[str, Any], Any]  # fn(model, dump) -> rows
F = TypeVar("F", bound=Callable[..., Any])

# summary.json metric keys -> the paper's column names
METRIC_NAMES = {"coco/bbox_mAP": "AP", "coco/bbox_mAP_50": "AP50", "coco/bbox_mAP_75": "AP75",
                "coco/bbox_mAP_s": "APs", "coco/bbox_mAP_m": "APm", "coco/bbox_mAP_l": "APl"}


def run_seeds(run_dir: str | Path) -> list[int]:
    """The seeds of a run, from its summary."""
    return [int(s) for s in load_summary(run_dir)["seeds"]]


@overload
def load_seed_dump(run_dir: str | Path, seed: int, model: str,
                   by_shard: Literal[False] = False) -> Dump | Results: ...
@overload
def load_seed_dump(run_dir: str | Path, seed: int, model: str, by_shard: Literal[True]) -> DumpShards | Results: ...
def load_seed_dump(run_dir: str | Path, seed: int, model: str,
                   by_shard: bool = False) -> Dump | DumpShards | Results:
    """One dump of a multi-seed run; of an input set (:mod:`analysis.inputs.runs`), the dump or COCO
    results file (:class:`analysis.measures.results.Results`: post-NMS only) listed for (seed, model),
    with the annotation file given for it, if any. ``by_shard``: a dump comes as
    :class:`~analysis.inputs.io.DumpShards` (read shard by shard by whoever iterates it)."""
    summary = load_summary(run_dir)
    read = dump_shards if by_shard else load_dump
    if input_kind(summary) is None:
        return read(dump_dir(run_path(run_dir), seed, model))
    entry = input_entry(summary, seed, model)
    if input_kind(summary) == "results":
        return load_results(entry["path"], entry["ann_file"])
    dump = read(entry["path"])
    if entry.get("ann_file"):
        dump.meta["ann_file"] = entry["ann_file"]  # where it is now; checked against the dump's hash
    return dump


def _note_shard(done: int, total: int, what: str, shard: int, shards: int) -> None:
    note_progress(done, total, what, (shard, shards))


def by_shard(fn: F) -> F:
    """Mark ``fn(model, dump)`` as one that reads a dump shard by shard
    (:func:`analysis.inputs.io.shards_of`): :func:`over_seeds_many` then gives it a
    :class:`~analysis.inputs.io.DumpShards` instead of loading the dump whole, unless another
    function of the same pass needs the whole dump (then it gets the loaded one)."""
    fn.by_shard = True  # type: ignore[attr-defined]
    return fn


# The file a page's kernel reports its progress to (set by ``retconf report`` for each notebook).
PROGRESS_ENV = "RETCONF_PROGRESS_FILE"


def note_progress(done: int, total: int, what: str, shard: tuple[int, int] | None = None) -> None:
    """Append ``{"done", "total", "what", "time"}`` (and ``"shard": [i, n]`` while the next dump is
    read shard by shard: i of its n shards done) as one JSON line to the file named by
    ``$RETCONF_PROGRESS_FILE``; nothing when it is unset (a notebook run by hand)."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        record = {"done": done, "total": total, "what": what, "time": time.time()}
        if shard is not None:
            record["shard"] = list(shard)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def over_seeds(run_dir: str | Path, models: Sequence[str],
               fn: Callable[[str, Any], Any], seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """Apply ``fn(model, dump)`` to every (seed, model) dump, one dump in memory at a time (``dump``:
    what :func:`load_seed_dump` returns, a :class:`~analysis.inputs.io.Dump` or a results file).

    ``fn`` returns a dict (one row), a list of dicts or a DataFrame (several rows). Returns the
    rows with ``seed`` and ``model`` columns first. Reports its progress (:func:`note_progress`)
    after each dump. Several functions over the same dumps: :func:`over_seeds_many`.
    """
    what = getattr(fn, "__name__", "dumps")
    return over_seeds_many(run_dir, models, {what: fn}, seeds)[what]



def over_seeds_many(run_dir: str | Path, models: Sequence[str],
                    fns: Mapping[str, PerDump | tuple[PerDump, Sequence[str]]],
                    seeds: Iterable[int] | None = None) -> dict[str, pd.DataFrame]:
    """:func:`over_seeds` for several functions in one pass: each (seed, model) dump is read once
    and given to every function, instead of once per function.

    ``fns`` maps a name to ``fn(model, dump)``, or to ``(fn, models)`` for a function meant for
    some of the models only (``models`` in the order its rows should come, each model's seeds
    in turn, as ``over_seeds(run_dir, [m], fn)`` for each ``m`` concatenated). Returns each
    name's rows, exactly as :func:`over_seeds` would give them. A dump that only functions
    marked :func:`by_shard` read is not loaded whole: they get it shard by shard.
    """
    seed_list = list(run_seeds(run_dir) if seeds is None else seeds)
    plans = {name: (spec if isinstance(spec, tuple) else (spec, list(models))) for name, spec in fns.items()}
    wanted = dict.fromkeys(m for _, ms in plans.values() for m in ms)
    pairs = [(seed, model) for seed in seed_list for model in [*models, *(m for m in wanted if m not in models)]
             if model in wanted]
    frames: dict[str, dict[tuple[int, str], pd.DataFrame]] = {name: {} for name in plans}
    what = next(iter(plans)) if len(plans) == 1 else f"{len(plans)} tables"
    note_progress(0, len(pairs), what)
    for i, (seed, model) in enumerate(pairs):
        lazy = all(getattr(fn, "by_shard", False) for fn, ms in plans.values() if model in ms)
        dump = load_seed_dump(run_dir, seed, model, by_shard=True) if lazy else load_seed_dump(run_dir, seed, model)
        if isinstance(dump, DumpShards):
            dump.on_shard = partial(_note_shard, i, len(pairs), what)
        for name, (fn, ms) in plans.items():
            if model in ms:
                rows = fn(model, dump)
                df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame([rows] if isinstance(rows, dict)
                                                                                    else rows)
                df.insert(0, "model", model)
                df.insert(0, "seed", seed)
                frames[name][seed, model] = df
        del dump
        note_progress(i + 1, len(pairs), what)
    out: dict[str, pd.DataFrame] = {}
    for name, (_, ms) in plans.items():
        order = ([(s, m) for m in ms for s in seed_list] if isinstance(fns[name], tuple)
                 else [(s, m) for s in seed_list for m in ms])
        out[name] = pd.concat([frames[name][k] for k in order], ignore_index=True)
    return out


def mean_sd(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and sample standard deviation of ``metrics`` over the seeds of each ``by`` group.

    Args:
        df: rows with a ``seed`` column, e.g. from :func:`over_seeds`.
    Returns:
        One row per group: ``by`` columns, ``seeds`` (how many), then for each metric ``m`` the
        mean as ``m`` and the spread as ``m_sd`` (NaN for a single seed). Groups keep their
        first-appearance order.
    """
    by, metrics = list(by), [m for m in metrics if m in df.columns]
    g = df.groupby(by, sort=False)
    out = g[metrics].mean()
    sd = g[metrics].std(ddof=1).add_suffix("_sd")
    n = g["seed"].nunique().rename("seeds")
    table = pd.concat([n, out, sd], axis=1)
    ordered = ["seeds"] + [c for m in metrics for c in (m, f"{m}_sd")]
    return table[ordered].reset_index()


def n_seeds(n: int) -> str:
    """``"1 seed"``, ``"3 seeds"``: a seed count for titles."""
    return f"{n} seed{'s' * (n != 1)}"


def seeds_note(n: int) -> str:
    """How a table's numbers came about, for the line above it."""
    if n == 1:
        return "1 seed: no spread (rerun with `retconf reproduce --seeds N` for mean ± sd)"
    return f"mean ± sd (sample standard deviation) over {n} training seeds"


def summary_metrics(run_dir: str | Path) -> pd.DataFrame:
    """Final validation metrics of every (seed, model) of a run, in the paper's column names;
    models in the run's detector order, then its ablation variants."""
    summary = load_summary(run_dir)
    rows = []
    for seed in summary["seeds"]:
        records = summary["metrics"][str(seed)]
        order = [m for m in summary.get("detectors", []) if m in records] + \
            [m for m in records if m not in summary.get("detectors", [])]
        for model in order:
            record = records[model]
            rows.append({"seed": int(seed), "model": model,
                         **{METRIC_NAMES[k]: v for k, v in record.items() if k in METRIC_NAMES}})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- paired seed statistics
def paired_deltas(df: pd.DataFrame, key: str, metric: str,
                  pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per-seed differences ``metric(a) − metric(b)`` for each pair ``(a, b)`` of ``key``
    values: detectors (or fusions) of one seed share everything else, so their difference is
    the paired effect.

    Args:
        df: rows with ``seed``, ``key`` and ``metric`` (e.g. from :func:`over_seeds`).
    Returns:
        rows ``comparison`` (``"a − b"``), ``seed``, ``delta``; seeds where either side is
        missing are left out.
    """
    wide = df.pivot_table(index="seed", columns=key, values=metric, aggfunc="first")
    rows = []
    for a, b in pairs:
        if a not in wide or b not in wide:
            continue
        for seed, delta in (wide[a] - wide[b]).dropna().items():
            rows.append({"comparison": f"{a} − {b}", "seed": int(seed), "delta": float(delta)})
    return pd.DataFrame(rows, columns=["comparison", "seed", "delta"])


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, sd, half-width of the two-sided t interval, n) of per-seed ``values``, non-finite
    values left out: the half-width ``t(1 − (1 − confidence)/2, n − 1) · sd / √n`` is the
    smallest mean the seeds resolve from 0 (sd and half-width NaN for one value)."""
    from scipy.stats import t as student_t

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    sd = float(v.std(ddof=1))
    return mean, sd, float(student_t.ppf(1 - (1 - confidence) / 2, n - 1) * sd / np.sqrt(n)), n


def seeds_to_resolve(effect: float, sd: float, confidence: float = 0.95, limit: int = 100_000) -> int:
    """The smallest number of seeds n ≥ 2 whose two-sided paired t half-width
    ``t(1 − (1 − confidence)/2, n − 1) · sd / √n`` is below ``|effect|``: how many seeds would
    resolve a mean difference of ``effect`` at a seed-to-seed spread of ``sd`` (the power line
    of a finding; it assumes the spread stays what was measured). ``limit`` when the effect is 0
    or the seeds needed exceed it; else 2 when ``sd`` is 0.
    """
    from scipy.stats import t as student_t

    effect, sd = abs(float(effect)), float(sd)
    if not (np.isfinite(effect) and np.isfinite(sd)) or sd < 0:
        raise ValueError(f"seeds_to_resolve needs a finite effect and sd >= 0, got {effect!r}, {sd!r}")
    if effect == 0:
        return limit
    if sd == 0:
        return 2
    q = 1 - (1 - confidence) / 2

    def resolves(n: int) -> bool:
        return float(student_t.ppf(q, n - 1)) * sd / np.sqrt(n) < effect

    lo, hi = 2, 2  # doubling, then bisection (the half-width falls monotonically with n)
    while not resolves(hi):
        if hi >= limit:
            return limit
        lo, hi = hi, min(2 * hi, limit)
    while lo < hi:
        mid = (lo + hi) // 2
        if resolves(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def paired_summary(deltas: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± sd of paired differences, sign agreement and the smallest resolvable difference.

    The resolution rule is the half-width of the two-sided paired t interval,
    ``t(1 − (1 − confidence)/2, n − 1) · sd / √n``: a mean difference smaller than that is not
    distinguishable from 0 at ``confidence`` with these ``n`` seeds (NaN for one seed).

    Args:
        deltas: rows ``comparison``, ``seed``, ``delta`` (:func:`paired_deltas`).
    Returns:
        one row per comparison: ``seeds``, ``mean``, ``sd``, ``agree`` (seeds whose delta has
        the sign of the mean), ``resolution`` (the half-width), ``resolved`` (|mean| >
        resolution).
    """
    rows = []
    for comparison, g in deltas.groupby("comparison", sort=False):
        d = g["delta"].to_numpy(dtype=float)
        mean, sd, half, n = interval(d, confidence)
        sign = np.sign(mean)
        rows.append({"comparison": comparison, "seeds": n, "mean": mean, "sd": sd,
                     "agree": int((np.sign(d) == sign).sum()) if sign != 0 else 0,
                     "resolution": half, "resolved": bool(n > 1 and abs(mean) > half)})
    return pd.DataFrame(rows, columns=["comparison", "seeds", "mean", "sd", "agree", "resolution", "resolved"])

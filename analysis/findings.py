"""Findings blocks: the paper's claims that a report page touches, each with a verdict computed
from the page's per-seed numbers — never typed by hand.

Verdict rule (:func:`verdict`): a claim is a statement about the sign of a per-seed quantity
``value − reference`` (a paired difference of two detectors or scores of the same seed, or a
share against a threshold). With n ≥ 2 seeds the two-sided 95 % paired t interval of its mean
decides: entirely on the claimed side → **reproduced**; entirely on the other side → **not
reproduced**; containing the reference → **inconclusive at n seeds**. One seed has no spread,
so every claim is inconclusive at 1 seed (its value is still shown). An equivalence claim
("A ≈ B within ± m") uses the same two-sided 95 % interval (not TOST's 90 %): reproduced when
the whole interval lies within ± ``margin``, not reproduced when it lies entirely outside
± ``margin``, inconclusive otherwise (an interval that merely excludes 0 decides nothing).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .seeds import interval, seeds_to_resolve

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
# The same verdicts in the words of the project's own questions (pages 05, 06): the paper made
# no such claim, so nothing is "reproduced".
HOLDS, DOES_NOT_HOLD = "holds", "does not hold"
OWN_WORDS = {REPRODUCED: HOLDS, NOT_REPRODUCED: DOES_NOT_HOLD}


@dataclass(frozen=True)
class Finding:
    """One claim and its verdict. ``values``: the per-seed quantity (value − reference)."""

    claim: str
    verdict: str
    evidence: str
    own: bool = False  # a question of this project's, not a claim of the paper's

    def markdown(self) -> str:
        return f"- **{self.verdict}** — {self.claim}: {self.evidence}"


def verdict(values: Sequence[float], expected: int = 1, margin: Optional[float] = None) -> str:
    """The verdict on per-seed ``values`` (already minus the reference).

    Args:
        values: one number per seed (NaN: seed left out).
        expected: +1 the claim says the values are > 0, −1 that they are < 0; ignored when
            ``margin`` is given.
        margin: for an equivalence claim, the largest |difference| that counts as equal.
    """
    mean, _, half, n = interval(values)
    if n == 0:
        return "not measured"
    if n == 1:
        return "inconclusive at 1 seed"
    lo, hi = mean - half, mean + half
    if margin is not None:
        if -margin <= lo and hi <= margin:
            return REPRODUCED
        if lo > margin or hi < -margin:
            return NOT_REPRODUCED
        return f"inconclusive at {n} seeds"
    if (lo > 0 and expected > 0) or (hi < 0 and expected < 0):
        return REPRODUCED
    if (lo > 0 and expected < 0) or (hi < 0 and expected > 0):
        return NOT_REPRODUCED
    return f"inconclusive at {n} seeds"


def evidence(values: Sequence[float], what: str, digits: int = 3, reference: float = 0.0,
             bounds: Optional[tuple[float, float]] = None) -> str:
    """'what = mean ± sd over n seeds (95 % interval lo … hi; k/n seeds above reference)';
    ``bounds``: the range the quantity can take (e.g. (0, 1) for a share), which the shown
    interval is clipped to."""
    mean, sd, half, n = interval(values)
    if n == 0:
        return f"{what}: no value in this run"
    f = f"{{:+.{digits}f}}" if reference == 0.0 else f"{{:.{digits}f}}"
    shown = mean + reference
    if n == 1:
        return f"{what} = {f.format(shown)} (one seed: no spread)"
    above = int((np.asarray(values, dtype=float) > 0).sum())
    lo, hi = shown - half, shown + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (f"{what} = {f.format(shown)} ± {sd:.{digits}f} over {n} seeds "
            f"(95 % interval {f.format(lo)} … {f.format(hi)}; "
            f"{above}/{n} seeds {'above' if reference else 'positive'}{f' {reference:g}' if reference else ''})")


def left_out(values: Sequence[float], seeds: Optional[Sequence[int]] = None,
             missing: Optional[Mapping[int, str]] = None, signed: bool = True) -> str:
    """'; per seed: 0 +0.012, 1 undefined; seed 1 left out: why' for per-seed ``values`` — the
    per-seed numbers behind a finding and every seed whose value is undefined (NaN) with the
    reason from ``missing`` (seed -> why), so no seed is dropped silently. Empty for fewer than
    two values without a gap.

    Args:
        values: one number per seed (value − reference), in the order of ``seeds``.
        seeds: the seed of each value (default 0, 1, …).
        missing: why a seed's value is undefined (seeds without an entry: "undefined on that seed").
        signed: show the values with their sign (differences) or plain (levels, e.g. shares).
    """
    seeds = list(range(len(values))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(values):
        raise ValueError(f"{len(values)} values for {len(seeds)} seeds")
    gaps = [s for s, v in zip(seeds, values) if not np.isfinite(v)]
    if len(values) < 2 and not gaps:
        return ""
    if len(gaps) == len(values):  # nothing measured: say why once per distinct reason given
        reasons = dict.fromkeys((missing or {})[s] for s in gaps if s in (missing or {}))
        return f" (undefined on every seed{': ' + '; '.join(reasons) if reasons else ''})"
    spec = "+.4g" if signed else ".4g"
    shown = ", ".join(f"{s} {'undefined' if not np.isfinite(v) else format(v, spec)}" for s, v in zip(seeds, values))
    out = f"; per seed: {shown}"
    for s in gaps:
        out += f"; seed {s} left out: {(missing or {}).get(s, 'undefined on that seed')}"
    return out


def power_line(values: Sequence[float], digits: int = 3, limit: int = 10_000) -> str:
    """'; half-width ±h; resolving +0.028 needs about N seeds at this spread' for per-seed
    differences ``values`` (NaN left out): the 95 % paired half-width and, while it does not
    resolve the mean, how many seeds would (:func:`analysis.seeds.seeds_to_resolve`, assuming
    the measured spread). Empty below two values."""
    mean, sd, half, n = interval(values)
    if n < 2:
        return ""
    out = f"; half-width ±{half:.{digits}f}"
    if abs(mean) > half:
        return out
    if mean == 0:
        return out + "; a mean of exactly 0 is resolved by no number of seeds"
    need = seeds_to_resolve(mean, sd, limit=limit)
    many = f"more than {limit:,}" if need >= limit else f"about {need}"
    return out + f"; resolving {mean:+.{digits}f} needs {many} seeds at this spread"


def claim(text: str, values: Sequence[float], what: str, expected: int = 1, reference: float = 0.0,
          margin: Optional[float] = None, digits: int = 3, seeds: Optional[Sequence[int]] = None,
          missing: Optional[Mapping[int, str]] = None, own: bool = False,
          bounds: Optional[tuple[float, float]] = None) -> Finding:
    """A :class:`Finding` for per-seed ``values`` of a quantity claimed to be above
    (``expected`` = +1) or below (−1) ``reference`` (or within ± ``margin`` of it). The evidence
    lists the per-seed values (of ``seeds``) and names each seed whose value is undefined, with
    the reason in ``missing`` (:func:`left_out`). ``own``: a question of this project's, judged by
    the same rule but worded "holds / does not hold" (:data:`OWN_WORDS`). ``bounds``: the range
    of the quantity itself (a share: (0, 1)), which the shown interval stays inside."""
    d = [float(v) - reference for v in values]
    ev = evidence(d, what, digits, reference, bounds) + ("" if margin is not None else power_line(d, digits)) + (
        left_out(d, seeds, missing) if reference == 0.0 else left_out([float(v) for v in values], seeds, missing, False))
    if margin is not None:
        ev += f"; equal means within ± {margin:g}"
    v = verdict(d, expected, margin)
    return Finding(text, OWN_WORDS.get(v, v) if own else v, ev, own)


def paired_claims(df: Any, column: str, base: str, text: str, what: str, expected: int = 1,
                  key: str = "model", digits: int = 3) -> list[Finding]:
    """One :func:`claim` per other value of ``key`` against ``base`` on the per-seed paired
    difference ``column(other) − column(base)`` (seeds where one side is missing are named, not
    dropped). ``text`` and ``what`` may use ``{model}`` and ``{base}``.

    Args:
        df: rows with ``seed``, ``key`` and ``column`` (one per (seed, key value)).
    """
    wide = df.pivot_table(index="seed", columns=key, values=column, aggfunc="first", dropna=False, sort=False)
    if base not in wide:
        return []
    out = []
    for other in [m for m in dict.fromkeys(df[key]) if m != base and m in wide]:
        names = {"model": other, "base": base}
        out.append(claim(text.format(**names), list(wide[other] - wide[base]), what.format(**names), expected,
                         digits=digits, seeds=[int(s) for s in wide.index]))
    return out


def not_measured(text: str, why: str) -> Finding:
    """A claim the run has no numbers for (e.g. the loss ablations without ``--full``)."""
    return Finding(text, "not measured", why)


def render(findings: Sequence[Finding], note: str = "") -> str:
    """The findings block as HTML (a ``<div class="findings">`` the report tests look for)."""
    mark = {True: ' class="own"', False: ""}
    items = "".join(f"<li{mark[f.own]}><b>{html.escape(f.verdict)}</b> — {html.escape(f.claim)}: "
                    f"{html.escape(f.evidence)}</li>" for f in findings)
    own = (" The project's own questions (the paper makes no such claim) read <i>holds</i> / <i>does not "
           "hold</i> by the same rule and are tallied apart." if any(f.own for f in findings) else "")
    foot = f"<p><small>{html.escape(note)}</small></p>" if note else ""
    return (f'<div class="findings"><h2>Findings</h2><p>Computed from this page\'s numbers: a claim is '
            f"<i>reproduced</i> when the 95 % paired t interval over seeds lies on the claimed side, "
            f"<i>not reproduced</i> when it lies on the other side, <i>inconclusive</i> otherwise; an "
            f"equivalence claim (A ≈ B within ± m) is reproduced when the interval lies inside ± m and not "
            f"reproduced when it lies entirely outside.{own}</p>"
            f"<ul>{items}</ul>{foot}</div>")


class FindingsBlock:
    """A findings block shown where it is created (the top of a page) and filled in by later
    cells: each :meth:`add` updates the same output (Jupyter ``display_id``), so the batch HTML
    shows the whole block at the top."""

    def __init__(self, note: str = "") -> None:
        from IPython.display import HTML, display

        self.findings: list[Finding] = []
        self.note = note
        self._handle = display(HTML(render([], "Filled in as the page runs.")), display_id=True)

    def add(self, *findings: Finding) -> None:
        from IPython.display import HTML

        self.findings.extend(findings)
        if self._handle is not None:
            self._handle.update(HTML(render(self.findings, self.note)))

    def __repr__(self) -> str:
        return "\n".join(f.markdown() for f in self.findings)


def per_seed(df: Any, column: str) -> list[float]:
    """The values of ``column`` in seed order (one row per seed expected)."""
    return [float(v) for v in df.sort_values("seed")[column]]

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

A paper claim is made with :func:`paper` (or :func:`peak_inside`) from its id in the claims
registry (:mod:`analysis.paper.claims`), which fixes the direction or margin the paper's words
state; the project's own questions with :func:`claim` (``own=True``) read "holds / does not
hold". :func:`render` shows the claims a page counts, those counted on another page (linked)
and the own questions apart, and embeds the same data as JSON (:func:`page_record`) that
``retconf report`` writes beside the page. :func:`fragility` marks a resolved verdict that the
measured numeric-path shift (:func:`measured_path_shift`) could make inconclusive.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..measures.seeds import interval, seeds_to_resolve
from .claims import paper_claim, restatements

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
# The same verdicts in the words of the project's own questions (pages 05, 06): the paper made
# no such claim, so nothing is "reproduced".
HOLDS, DOES_NOT_HOLD = "holds", "does not hold"
OWN_WORDS = {REPRODUCED: HOLDS, NOT_REPRODUCED: DOES_NOT_HOLD}


@dataclass(frozen=True)
class Finding:
    """One claim and its verdict.

    ``claim`` is what was tested (for a paper claim: the quantity, in words); ``claim_id``,
    ``quote`` and ``section`` name the paper's statement in the registry
    (:mod:`analysis.paper.claims`) and are empty for the project's own questions. ``home`` is
    the report page that counts the claim ("" until a :class:`FindingsBlock` places it); a page
    that shows a claim whose home is another page links there and does not count it.
    ``values`` are the per-seed quantity (value − reference) of ``seeds``; ``mean``, ``lo`` and
    ``hi`` its mean and 95 % interval (NaN where undefined); ``fragile`` says why a resolved
    verdict may not survive another numeric path ("" when it does, or was not judged)."""

    claim: str
    verdict: str
    evidence: str
    own: bool = False  # a question of this project's, not a claim of the paper's
    claim_id: str = ""
    quote: str = ""
    section: str = ""
    home: str = ""
    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    mean: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    fragile: str = ""
    also: tuple[str, ...] = ()  # registry ids that restate the claim (same test, counted once)

    def markdown(self) -> str:
        cite = f"[{self.claim_id}] " if self.claim_id else ""
        return f"- **{self.verdict}** — {cite}{self.claim}: {self.evidence}"

    def record(self) -> dict:
        """The finding as JSON-ready data (NaN as None)."""
        out = asdict(self)
        for k in ("mean", "lo", "hi"):
            out[k] = None if not math.isfinite(out[k]) else out[k]
        out["values"] = [None if not math.isfinite(v) else v for v in self.values]
        out["seeds"] = list(self.seeds)
        out["also"] = list(self.also)
        return out


def verdict(values: Sequence[float], expected: int = 1, margin: float | None = None) -> str:
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
             bounds: tuple[float, float] | None = None) -> str:
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


def left_out(values: Sequence[float], seeds: Sequence[int] | None = None,
             missing: Mapping[int, str] | None = None, signed: bool = True) -> str:
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
    resolve the mean, how many seeds would (:func:`analysis.measures.seeds.seeds_to_resolve`, assuming
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


NUMERIC_PATH_FILE = Path(__file__).resolve().parents[1] / "numeric_path.json"


def measured_path_shift(path: Path | None = None) -> float | None:
    """One seed's measured shift of a paired AP difference between two numeric paths (the
    ``path_shift_ap`` that ``benchmarks/numeric_path.py --write-shift`` writes to
    ``analysis/numeric_path.json``), or None when it was not measured."""
    path = path or NUMERIC_PATH_FILE
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("path_shift_ap")
    return float(value) if value is not None and math.isfinite(float(value)) else None


def fragility(values: Sequence[float], expected: int = 1, margin: float | None = None,
              path_shift: float | None = None) -> str:
    """Why a resolved verdict on per-seed ``values`` may not survive another numeric path, or ""
    when it does (or is not resolved, or ``path_shift`` is unknown).

    ``path_shift`` is the measured standard deviation of one seed's change in this quantity
    between two numeric paths (CPU families or oneDNN caps, ``benchmarks/numeric_path.py``).
    If each seed's path effect is a fresh draw, the mean of n seeds moves by about
    ``path_shift / √n``: the verdict is fragile when moving every value by that much, either way,
    changes it (its interval ends within that distance of the decision boundary)."""
    v = verdict(values, expected, margin)
    if path_shift is None or v not in (REPRODUCED, NOT_REPRODUCED):
        return ""
    n = sum(1 for x in values if np.isfinite(x))
    step = path_shift / math.sqrt(n)
    for sign in (1, -1):
        if verdict([x + sign * step for x in values], expected, margin) != v:
            return (f"another numeric path may make this inconclusive: the interval ends within "
                    f"{step:.4f} (the measured cross-path shift {path_shift:.4f} / √{n}) of the boundary")
    return ""


def claim(text: str, values: Sequence[float], what: str, expected: int = 1, reference: float = 0.0,
          margin: float | None = None, digits: int = 3, seeds: Sequence[int] | None = None,
          missing: Mapping[int, str] | None = None, own: bool = False,
          bounds: tuple[float, float] | None = None, path_shift: float | None = None) -> Finding:
    """A :class:`Finding` for per-seed ``values`` of a quantity claimed to be above
    (``expected`` = +1) or below (−1) ``reference`` (or within ± ``margin`` of it). The evidence
    lists the per-seed values (of ``seeds``) and names each seed whose value is undefined, with
    the reason in ``missing`` (:func:`left_out`). ``own``: a question of this project's, judged by
    the same rule but worded "holds / does not hold" (:data:`OWN_WORDS`). ``bounds``: the range
    of the quantity itself (a share: (0, 1)), which the shown interval stays inside.
    ``path_shift``: the quantity's measured cross-path sd per seed (:func:`fragility`)."""
    d = [float(v) - reference for v in values]
    ev = evidence(d, what, digits, reference, bounds) + ("" if margin is not None else power_line(d, digits)) + (
        left_out(d, seeds, missing) if reference == 0.0
        else left_out([float(v) for v in values], seeds, missing, False))
    if margin is not None:
        ev += f"; equal means within ± {margin:g}"
    v = verdict(d, expected, margin)
    mean, _, half, _ = interval(d)
    fragile = fragility(d, expected, margin, path_shift)
    return Finding(text, OWN_WORDS.get(v, v) if own else v, ev, own,
                   values=tuple(float(x) for x in values),
                   seeds=tuple(int(s) for s in (seeds if seeds is not None else range(len(values)))),
                   mean=mean + reference, lo=mean + reference - half, hi=mean + reference + half, fragile=fragile)


def paper(claim_id: str, values: Sequence[float], what: str, text: str = "", reference: float = 0.0,
          digits: int = 3, seeds: Sequence[int] | None = None, missing: Mapping[int, str] | None = None,
          bounds: tuple[float, float] | None = None, path_shift: float | None = None) -> Finding:
    """A :class:`Finding` on the paper's claim ``claim_id`` of the registry
    (:mod:`analysis.paper.claims`): the direction or equivalence margin is the registry's (what
    the paper's words state), so a page cannot test another statement under the paper's name.
    ``text`` says what this page measured (default: the registry's quantity); the other
    arguments are :func:`claim`'s. A claim the registry marks "peak-inside" needs
    :func:`peak_inside`."""
    c = _computed_claim(claim_id)
    if c.stated == "peak-inside":
        raise ValueError(f"claim {claim_id} states an optimum inside a range: use findings.peak_inside")
    f = claim(text or c.quantity, values, what, expected=c.expected or 1, reference=reference,
              margin=c.margin if c.stated == "equal" else None, digits=digits, seeds=seeds, missing=missing,
              bounds=bounds, path_shift=path_shift)
    if c.paper_value:
        f = replace(f, evidence=f.evidence + f"; the paper's value: {c.paper_value}")
    return _cite(f, c)


def _computed_claim(claim_id: str) -> Any:
    """The registry's claim ``claim_id``, which must be one a page computes (status ``tested``)
    and not a restatement (its finding is that of the claim it restates)."""

    c = paper_claim(claim_id)
    if not c.computed:
        raise ValueError(f"claim {claim_id} is marked {c.status!r} in the registry: mark it 'tested' first")
    if c.same_as:
        raise ValueError(f"claim {claim_id} restates {c.same_as}: test {c.same_as}, which carries it")
    return c


def _cite(f: Finding, c: Any) -> Finding:
    """``f`` citing the registry's claim ``c`` and the claims that restate it."""

    return replace(f, claim_id=c.id, quote=c.quote, section=c.section, home=c.home, also=restatements(c.id))


def not_computed(claim_id: str, why: str) -> Finding:
    """A paper claim of the registry this run has no numbers for (e.g. a loss ablation without
    ``--full``): verdict "not measured", with the reason."""
    c = _computed_claim(claim_id)
    return _cite(Finding(c.quantity, "not measured", why), c)


def peak_inside(claim_id: str, rising: Sequence[float], falling: Sequence[float], what: str, text: str = "",
                digits: int = 4, seeds: Sequence[int] | None = None,
                path_shift: float | None = None) -> Finding:
    """A :class:`Finding` on a registry claim that a curve peaks inside a range: ``rising`` are
    the per-seed differences value(optimum) − value(low end) and ``falling`` value(optimum) −
    value(high end), both claimed > 0. Reproduced when both sides are, not reproduced when
    either side is reproduced the other way, inconclusive otherwise."""
    c = _computed_claim(claim_id)
    if c.stated != "peak-inside":
        raise ValueError(f"claim {claim_id} states {c.stated!r}, not an optimum inside a range: use findings.paper")
    up = claim("", rising, f"{what}, rising side", digits=digits, seeds=seeds, path_shift=path_shift)
    down = claim("", falling, f"{what}, falling side", digits=digits, seeds=seeds, path_shift=path_shift)
    both = {up.verdict, down.verdict}
    if both == {REPRODUCED}:
        v = REPRODUCED
    elif NOT_REPRODUCED in both:
        v = NOT_REPRODUCED
    else:
        v = next(x for x in (up.verdict, down.verdict) if x != REPRODUCED)
    ev = f"{up.evidence}. {down.evidence}" + (f"; the paper's value: {c.paper_value}" if c.paper_value else "")
    fragile = "; ".join(x for x in (up.fragile, down.fragile) if x) if v == REPRODUCED else (
        next((x.fragile for x in (up, down) if x.verdict == NOT_REPRODUCED and x.fragile), ""))
    return _cite(Finding(text or c.quantity, v, ev, values=up.values + down.values, seeds=up.seeds + down.seeds,
                         mean=up.mean, lo=up.lo, hi=up.hi, fragile=fragile), c)


def paired_claims(df: Any, column: str, base: str, text: str, what: str, expected: int = 1,
                  key: str = "model", digits: int = 3, own: bool = False) -> list[Finding]:
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
                         digits=digits, seeds=[int(s) for s in wide.index], own=own))
    return out


def not_measured(text: str, why: str) -> Finding:
    """A claim the run has no numbers for (e.g. the loss ablations without ``--full``)."""
    return Finding(text, "not measured", why)


RULE = ("Computed from this page's numbers: a claim is <i>reproduced</i> when the 95 % paired t interval over "
        "seeds lies on the side the paper states, <i>not reproduced</i> when it lies on the other side, "
        "<i>inconclusive</i> otherwise; an equivalence claim (A ≈ B within ± m) is reproduced when the interval "
        "lies inside ± m and not reproduced when it lies entirely outside. Each paper claim cites its row of the "
        "claims registry (<code>analysis/paper/claims.csv</code>) with the paper's words, and is counted on one "
        "page only.")
OWN_STYLE = "border-left:4px solid #8a6d3b;background:#fbf7ee;padding:0.1em 1em;margin-top:0.8em"


def _fragile_html(f: Finding) -> str:
    return f' <span class="fragile" style="color:#a33">(fragile: {html.escape(f.fragile)})</span>' if f.fragile else ""


def _paper_item(f: Finding, here: bool) -> str:
    """One paper claim: its verdict, registry id, the paper's words, what was measured."""
    cite = (f'<code>{html.escape(f.claim_id)}</code> ({html.escape(f.section)}): “{html.escape(f.quote)}” — '
            if f.claim_id else "")
    where = "" if here else f' <i>Counted on <a href="{html.escape(f.home)}.html">{html.escape(f.home)}</a>.</i>'
    if f.also:
        also = ", ".join(f"<code>{html.escape(a)}</code>" for a in f.also)
        where += f" <small>The paper restates it as {also}.</small>"
    cls = "paper" if here else "elsewhere"
    data = f' data-claim="{html.escape(f.claim_id)}"' if f.claim_id else ""
    return (f'<li class="{cls}"{data}><b>{html.escape(f.verdict)}</b> — {cite}tested as {html.escape(f.claim)}: '
            f"{html.escape(f.evidence)}{_fragile_html(f)}{where}</li>")


def page_record(findings: Sequence[Finding], page: str = "", numbers: Mapping[str, Any] | None = None) -> dict:
    """The findings of a page (and its key ``numbers``) as JSON-ready data: what
    ``retconf report`` writes beside the page as ``NN_name.json``."""
    return {"page": page, "findings": [f.record() for f in findings], "numbers": _plain(dict(numbers or {}))}


def counted_here(home: str, page: str) -> bool:
    """Whether ``page`` counts a paper claim whose home page is ``home`` (its home, or no home
    known) — for a :class:`Finding` and for its JSON record alike."""
    return not home or not page or home == page


def verdict_label(record: Mapping[str, Any]) -> str:
    """A finding record's verdict as the index and the generated docs show it: with
    " (fragile)" when another numeric path may change it."""
    return record["verdict"] + (" (fragile)" if record.get("fragile") else "")


def render(findings: Sequence[Finding], note: str = "", page: str = "",
           numbers: Mapping[str, Any] | None = None) -> str:
    """The findings block as HTML (a ``<div class="findings">`` the report tests look for): the
    paper's claims counted on this ``page``, those counted on another page (linked), and the
    project's own questions in a block of their own; the same data as JSON in a
    ``<script type="application/json" class="retconf-findings">`` (:func:`page_record`)."""
    claims = [f for f in findings if not f.own]
    here = [f for f in claims if counted_here(f.home, page)]
    there = [f for f in claims if not counted_here(f.home, page)]
    own = [f for f in findings if f.own]
    parts = [f"<h2>Findings</h2><p>{RULE}</p>"]
    if here:
        parts.append("<h3>The paper's claims</h3><ul>" + "".join(_paper_item(f, True) for f in here) + "</ul>")
    if there:
        parts.append("<h3>The paper's claims counted on another page</h3><ul>"
                     + "".join(_paper_item(f, False) for f in there) + "</ul>")
    if own:
        items = "".join(f'<li class="own"><b>{html.escape(f.verdict)}</b> — {html.escape(f.claim)}: '
                        f"{html.escape(f.evidence)}{_fragile_html(f)}</li>" for f in own)
        parts.append(f'<div class="own-questions" style="{OWN_STYLE}"><h3>This project\'s own questions</h3>'
                     "<p>The paper does not ask these. They are judged by the same rule, worded <i>holds</i> / "
                     f"<i>does not hold</i>, and tallied apart.</p><ul>{items}</ul></div>")
    if note:
        parts.append(f"<p><small>{html.escape(note)}</small></p>")
    data = json.dumps(page_record(findings, page, numbers), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    parts.append(f'<script type="application/json" class="retconf-findings">{data}</script>')
    return f'<div class="findings">{"".join(parts)}</div>'


class FindingsBlock:
    """A findings block shown where it is created (the top of a page) and filled in by later
    cells: each :meth:`add` updates the same output (Jupyter ``display_id``), so the batch HTML
    shows the whole block at the top. ``page`` is the report page's name (e.g.
    ``"04_main_results"``): a paper claim whose registry home is another page is shown and
    linked but not counted here. :meth:`number` records a key number for the page's JSON."""

    def __init__(self, note: str = "", page: str = "") -> None:
        from IPython.display import HTML, display

        self.findings: list[Finding] = []
        self.numbers: dict[str, Any] = {}
        self.note = note
        self.page = page
        self._handle = display(HTML(render([], "Filled in as the page runs.")), display_id=True)

    def _update(self) -> None:
        from IPython.display import HTML

        if self._handle is not None:
            self._handle.update(HTML(render(self.findings, self.note, self.page, self.numbers)))

    def add(self, *findings: Finding) -> None:
        self.findings.extend(findings)
        self._update()

    def number(self, name: str, value: Any) -> None:
        """Record ``value`` (a number, or a JSON-ready mapping or list of numbers) under ``name``."""
        self.numbers[name] = _plain(value)
        self._update()

    def __repr__(self) -> str:
        return "\n".join(f.markdown() for f in self.findings)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN as None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def per_seed(df: Any, column: str) -> list[float]:
    """The values of ``column`` in seed order (one row per seed expected)."""
    return [float(v) for v in df.sort_values("seed")[column]]

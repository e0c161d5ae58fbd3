"""The paper's testable claims as data: ``claims.csv`` beside this module.

One row per statement of the paper (abstract, introduction with its Table 1 and Figures 1–2, the
argument of §3, the prose under Tables 1–6, the conclusion): the paper's words verbatim (checked
against ``paper.txt``, the paper's text), the per-seed quantity that tests the statement and its
protocol, the direction or equivalence stated, the paper's own magnitude, whether this run can
test it and on which report page (its *home*: each claim is counted there once), and the rows
whose statements are in tension with it. :func:`load_claims` validates the whole file and
raises one :class:`ValueError` naming the file, the row's id and the field at fault.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLAIMS_FILE = HERE / "claims.csv"
PAPER_TEXT = HERE / "paper.txt"

COLUMNS: tuple[str, ...] = ("id", "section", "quote", "quantity", "protocol", "stated", "expected", "margin",
                            "paper_value", "status", "home", "conflicts", "same_as", "note")
# What a row may state, and the sign of the quantity each statement expects (None: no sign).
EXPECTED: dict[str, int | None] = {"greater": 1, "less": -1, "equal": 0, "peak-inside": None}
STATED: tuple[str, ...] = tuple(EXPECTED)
HOMES: tuple[str, ...] = ("01_misalignment", "02_alpha_sweep", "03_ablations", "04_main_results")
TESTED = "tested"
TO_COMPUTE = "not computed yet"  # testable on this run, with a home, but no page computes it yet
NOT_TESTABLE = "not testable on this run: "
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class PaperClaim:
    """One statement of the paper and how this project tests it (one row of ``claims.csv``)."""

    id: str
    section: str
    quote: str
    quantity: str
    protocol: str
    stated: str
    expected: int | None
    margin: float | None
    paper_value: str
    status: str
    home: str
    conflicts: tuple[str, ...]
    same_as: str
    note: str

    @property
    def testable(self) -> bool:
        """Whether this run can test the claim (``tested`` or ``not computed yet``; it then has a
        ``home``)."""
        return self.status in (TESTED, TO_COMPUTE)

    @property
    def computed(self) -> bool:
        """Whether its home page computes a finding on it (``status`` is ``tested``)."""
        return self.status == TESTED


def normalise(text: str) -> str:
    """``text`` with every run of whitespace made one space (how quotes are matched)."""
    return " ".join(text.split())


def _problem(path: Path, claim_id: str, field: str, what: str) -> ValueError:
    """The one error format of the registry: file, row id, field, what is wrong."""
    return ValueError(f"{path}: claim {claim_id!r}, field {field!r}: {what}")


def _expected(path: Path, row: dict[str, str]) -> int | None:
    """The ``expected`` sign of a row, checked against its ``stated``."""
    stated, raw = row["stated"], row["expected"].strip()
    if stated not in EXPECTED:
        raise _problem(path, row["id"], "stated", f"{stated!r} is not one of {STATED}")
    want = EXPECTED[stated]
    try:
        got = int(raw) if raw else None
    except ValueError:
        raise _problem(path, row["id"], "expected", f"{raw!r} is not +1, -1, 0 or empty") from None
    if got != want:
        shown = "empty" if want is None else f"{want:+d}" if want else "0"
        raise _problem(path, row["id"], "expected", f"{raw or 'empty'} is inconsistent with stated "
                                                    f"{stated!r}, which needs {shown}")
    return got


def _margin(path: Path, row: dict[str, str]) -> float | None:
    """The equivalence margin: a number ≥ 0 exactly when the row states ``equal``, justified in ``note``."""
    raw = row["margin"].strip()
    if row["stated"] != "equal":
        if raw:
            raise _problem(path, row["id"], "margin", f"{raw!r} is set but stated is {row['stated']!r}, not 'equal'")
        return None
    if not raw:
        raise _problem(path, row["id"], "margin", "stated 'equal' needs a margin")
    try:
        margin = float(raw)
    except ValueError:
        raise _problem(path, row["id"], "margin", f"{raw!r} is not a number") from None
    if not margin >= 0:
        raise _problem(path, row["id"], "margin", f"{raw!r} is negative")
    if not row["note"].strip():
        raise _problem(path, row["id"], "note", "a margin needs its justification in the note")
    return margin


def _status_and_home(path: Path, row: dict[str, str]) -> None:
    """``tested`` rows have a home among :data:`HOMES` and a quantity; the others a reason and no home."""
    status, home = row["status"].strip(), row["home"].strip()
    if status in (TESTED, TO_COMPUTE):
        if home not in HOMES:
            raise _problem(path, row["id"], "home", f"{home or 'empty'} for a tested claim: needs one of {HOMES}")
        if not row["quantity"].strip():
            raise _problem(path, row["id"], "quantity", "a tested claim needs the quantity that tests it")
    elif status.startswith(NOT_TESTABLE) and status[len(NOT_TESTABLE):].strip():
        if home:
            raise _problem(path, row["id"], "home", f"{home!r} is set but the claim is not tested ({status!r})")
    else:
        raise _problem(path, row["id"], "status", f"{status!r} is not {TESTED!r}, {TO_COMPUTE!r} or "
                                                  f"{NOT_TESTABLE + '<reason>'!r}")


def _claim(path: Path, row: dict[str, str], paper: str | None) -> PaperClaim:
    """One validated row (everything but the cross-row checks of :func:`_check_rows`)."""
    claim_id = row["id"]
    if not _SLUG.fullmatch(claim_id):
        raise _problem(path, claim_id, "id", "not a lowercase slug of letters, digits and single dashes")
    for field in ("section", "quote"):
        if not row[field].strip():
            raise _problem(path, claim_id, field, "empty")
    if paper is not None and normalise(row["quote"]) not in paper:
        raise _problem(path, claim_id, "quote", f"not found verbatim in {PAPER_TEXT} "
                                                f"(whitespace normalised): {row['quote']!r}")
    expected = _expected(path, row)
    margin = _margin(path, row)
    _status_and_home(path, row)
    return PaperClaim(id=claim_id, section=row["section"].strip(), quote=row["quote"].strip(),
                      quantity=row["quantity"].strip(), protocol=row["protocol"].strip(), stated=row["stated"],
                      expected=expected, margin=margin, paper_value=row["paper_value"].strip(),
                      status=row["status"].strip(), home=row["home"].strip(),
                      conflicts=tuple(row["conflicts"].split()), same_as=row["same_as"].strip(),
                      note=row["note"].strip())


def _check_conflicts(path: Path, claims: dict[str, PaperClaim]) -> None:
    """Every id a row names in ``conflicts`` exists, is not the row itself, and names the row back."""
    for c in claims.values():
        for other in c.conflicts:
            if other == c.id:
                raise _problem(path, c.id, "conflicts", "names the claim itself")
            if other not in claims:
                raise _problem(path, c.id, "conflicts", f"names {other!r}, which is not a claim of the registry")
            if c.id not in claims[other].conflicts:
                raise _problem(path, c.id, "conflicts", f"names {other!r}, whose conflicts do not name {c.id!r} "
                                                        "(conflicts must be symmetric)")


def _check_same_as(path: Path, claims: dict[str, PaperClaim]) -> None:
    """A restatement (``same_as`` set) names an earlier claim that is not itself a restatement and
    is tested by the same test: the same home, statement, sign, margin and status. Its finding
    is the named claim's, counted once."""
    for c in claims.values():
        if not c.same_as:
            continue
        first = claims.get(c.same_as)
        if first is None or first.id == c.id:
            raise _problem(path, c.id, "same_as", f"names {c.same_as!r}, which is not another claim of the registry")
        if first.same_as:
            raise _problem(path, c.id, "same_as", f"names {first.id!r}, itself a restatement of {first.same_as!r}")
        for field in ("home", "stated", "expected", "margin", "status"):
            if getattr(c, field) != getattr(first, field):
                raise _problem(path, c.id, field, f"{getattr(c, field)!r} differs from {getattr(first, field)!r} "
                                                  f"of {first.id!r}, which same_as says tests it")


def restatements(claim_id: str) -> tuple[str, ...]:
    """The ids whose ``same_as`` names ``claim_id`` (their finding is its finding)."""
    return tuple(c.id for c in load_claims().values() if c.same_as == claim_id)


def _rows(path: Path) -> list[dict[str, str]]:
    """The CSV rows as dicts, with the header and each row's width checked."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != COLUMNS:
            raise ValueError(f"{path}: header {header} is not the registry's columns {COLUMNS}")
        rows = []
        for number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(COLUMNS):
                claim_id = values[0] if values else ""
                raise _problem(path, claim_id or f"line {number}", "row",
                               f"{len(values)} fields, expected {len(COLUMNS)}")
            rows.append(dict(zip(COLUMNS, values)))
    return rows


@cache
def _load(path: Path) -> tuple[PaperClaim, ...]:
    """The validated registry at ``path`` (cached per file)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such claims registry")
    # The quotes are checked where the paper's text is at hand (a checkout; not an installed wheel).
    paper = normalise(PAPER_TEXT.read_text(encoding="utf-8")) if PAPER_TEXT.is_file() else None
    claims: dict[str, PaperClaim] = {}
    for row in _rows(path):
        if row["id"] in claims:
            raise _problem(path, row["id"], "id", "duplicate id")
        claims[row["id"]] = _claim(path, row, paper)
    _check_conflicts(path, claims)
    _check_same_as(path, claims)
    return tuple(claims.values())


def load_claims(path: str | Path | None = None) -> dict[str, PaperClaim]:
    """The registry (default: :data:`CLAIMS_FILE`) as id -> :class:`PaperClaim`, in the file's
    order, validated and cached.

    Raises:
        ValueError: naming the file, the row's id and the field, for a duplicate id, an unknown
            ``stated``, an ``expected`` that does not match it, an ``equal`` without a margin or a
            margin without ``equal``, a tested claim without a home (or with a home not in
            :data:`HOMES`), an untested one with a home, ``conflicts`` naming unknown ids or not
            symmetric, or a quote not found in the paper's text.
    """
    return {c.id: c for c in _load(Path(path or CLAIMS_FILE).resolve())}


def paper_claim(claim_id: str) -> PaperClaim:
    """One claim of the registry by id.

    Raises:
        KeyError: naming the id and the registry file when there is no such claim.
    """
    claims = load_claims()
    if claim_id not in claims:
        raise KeyError(f"claim {claim_id!r} is not in {CLAIMS_FILE}")
    return claims[claim_id]

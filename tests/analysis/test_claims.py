"""The claims registry (analysis/paper/claims.csv, analysis/paper/claims.py): every quote is the
paper's, the rows are consistent, and each malformed row is refused with a message naming the
file, the row and the field."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from analysis.paper import TABLES, PaperClaim, load_claims, paper_claim
from analysis.paper.claims import CLAIMS_FILE, COLUMNS, HOMES, NOT_TESTABLE, PAPER_TEXT, STATED, normalise


def _raw_rows() -> list[dict[str, str]]:
    with CLAIMS_FILE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_paper_text_is_in_the_repo() -> None:
    text = PAPER_TEXT.read_text(encoding="utf-8")
    assert text.startswith("Improvement of Classification in One-Stage Detector")
    assert "5 Conclusion" in text and "Table 6: Comparison of state-of-the-art detectors." in text


def test_every_quote_is_verbatim_in_the_paper() -> None:
    paper = normalise(PAPER_TEXT.read_text(encoding="utf-8"))
    missing = [c.id for c in load_claims().values() if normalise(c.quote) not in paper]
    assert not missing


def test_columns_are_the_registry_columns_in_order() -> None:
    with CLAIMS_FILE.open(newline="", encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert tuple(PaperClaim.__dataclass_fields__) == COLUMNS


def test_ids_are_unique_and_kept_in_file_order() -> None:
    ids = [r["id"] for r in _raw_rows()]
    assert len(ids) == len(set(ids))
    assert list(load_claims()) == ids


def test_rows_are_consistent() -> None:
    for c in load_claims().values():
        assert c.stated in STATED
        assert c.testable == (c.status in ("tested", "not computed yet"))
        assert c.computed == (c.status == "tested")
        if c.testable:
            assert c.home in HOMES and c.quantity
        else:
            assert c.status.startswith(NOT_TESTABLE) and not c.home
        assert (c.margin is not None) == (c.stated == "equal")
        assert c.expected == {"greater": 1, "less": -1, "equal": 0, "peak-inside": None}[c.stated]


def test_conflicts_are_symmetric() -> None:
    claims = load_claims()
    for c in claims.values():
        for other in c.conflicts:
            assert c.id in claims[other].conflicts, (c.id, other)


def test_the_known_conflict_is_registered_on_both_sides() -> None:
    improves = paper_claim("t1-iou-aware-improves-ap")
    same = paper_claim("s3-iou-aware-same-classification")
    assert "improve AP by 0.2 and 0.4 point" in improves.quote
    assert "IoU-aware Net almost has same classification" in same.quote
    assert same.id in improves.conflicts and improves.id in same.conflicts
    assert (improves.stated, improves.expected, improves.paper_value) == ("greater", 1, "+0.002")
    assert same.stated == "equal" and same.margin is not None and "Margin" in same.note
    assert improves.quantity == same.quantity  # the same number, stated two ways


# The statements of the paper a reviewer's list holds first: each must have its row.
REQUIRED = {
    "most IoU>0.5 boxes have cls<0.5": ["abs-most-iou-boxes-low-cls", "intro-most-iou-boxes-low-cls"],
    "NMS removes well-localized boxes": ["intro-t1-iou-share-drops-through-nms", "intro-nms-hurts-localization-more"],
    "RetinaNet-Conf improves AP at R50 and R101": ["abs-conf-improves-ap-r50", "abs-conf-improves-ap-r101",
                                                   "t6-conf-improves-ap-r50", "t6-conf-improves-ap-r101"],
    "IoU-aware improves AP": ["t1-iou-aware-improves-ap"],
    "RetinaNet-Conf improves AP with cls-only NMS": ["t1-conf-improves-ap", "t1-conf-beats-iou-aware"],
    "IoU-aware almost same classification": ["s3-iou-aware-same-classification", "s3-iou-branch-few-contribution"],
    "AP50 falls / AP75 rises": ["t1-iou-aware-ap50-falls", "t1-conf-ap50-falls", "t1-iou-aware-ap75-rises",
                                "t1-conf-ap75-rises"],
    "small objects fall / medium, large rise": ["t1-iou-aware-small-ap-falls", "t1-conf-small-ap-falls",
                                                "t1-conf-small-ar-falls", "t1-iou-aware-medium-ap-rises",
                                                "t1-conf-medium-ap-rises", "t1-iou-aware-large-ap-rises",
                                                "t1-conf-large-ap-rises"],
    "alpha optimum": ["t5-alpha-optimum", "t5-iou-aware-alpha-optimum"],
    "CE best loss": ["t2-ce-best-ap", "s3-ce-beats-l1", "s3-ce-beats-l2"],
    "which IoU prediction is more accurate": ["t5-iou-prediction-more-accurate"],
    "2x schedule 38.4": ["abs-2x-38-4", "t6-2x-38-4-improves-on-retinanet"],
    "fusion modes": ["t4-product-best", "t4-mul-almost-same-as-product", "t4-obj-filter-little-effect"],
    "Faster R-CNN comparison": ["t6-retinanet-gap-to-faster-rcnn", "t6-conf-r50-same-as-faster-rcnn"],
}


@pytest.mark.parametrize("statement", sorted(REQUIRED))
def test_each_statement_of_the_paper_has_its_row(statement: str) -> None:
    claims = load_claims()
    assert [i for i in REQUIRED[statement] if i not in claims] == []


def test_claims_this_run_cannot_test_keep_their_rows() -> None:
    for claim_id in ("abs-conf-improves-ap-r101", "abs-2x-38-4", "t6-retinanet-gap-to-faster-rcnn",
                     "t1-conf-large-ap-rises"):
        assert not paper_claim(claim_id).testable
    assert paper_claim("t5-alpha-optimum").stated == "peak-inside"
    assert paper_claim("t5-alpha-optimum").home == "02_alpha_sweep"
    assert paper_claim("t5-iou-prediction-more-accurate").home == "01_misalignment"


def test_unknown_id_names_the_id_and_the_file() -> None:
    with pytest.raises(KeyError) as err:
        paper_claim("no-such-claim")
    assert "no-such-claim" in str(err.value) and str(CLAIMS_FILE) in str(err.value)


def test_the_registry_is_not_a_paper_table() -> None:
    assert "claims" not in TABLES


# ---------------------------------------------------------------- refusals of malformed rows

GOOD = {"id": "abs-good", "section": "Abstract", "quote": "Most of predicted boxes", "quantity": "share − 0.5",
        "protocol": "before NMS", "stated": "greater", "expected": "1", "margin": "", "paper_value": "",
        "status": "tested", "home": "01_misalignment", "conflicts": "", "note": ""}
OTHER = {**GOOD, "id": "abs-other"}


def _write(tmp_path: Path, *rows: dict[str, str]) -> Path:
    path = tmp_path / "claims.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_good_registry_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "conflicts": "abs-other"}, {**OTHER, "conflicts": "abs-good"})
    claims = load_claims(path)
    assert list(claims) == ["abs-good", "abs-other"]
    assert claims["abs-good"].conflicts == ("abs-other",) and claims["abs-good"].testable
    assert claims["abs-good"].expected == 1 and claims["abs-good"].margin is None
    (tmp_path / "restated").mkdir()  # another file: the registry is cached per path
    restated = load_claims(_write(tmp_path / "restated", GOOD, {**OTHER, "same_as": "abs-good"}))
    assert restated["abs-other"].same_as == "abs-good" and restated["abs-other"].computed


BAD = [  # (rows, the id and the field the message must name)
    ((GOOD, GOOD), "abs-good", "id"),
    (({**GOOD, "stated": "bigger"},), "abs-good", "stated"),
    (({**GOOD, "expected": "-1"},), "abs-good", "expected"),
    (({**GOOD, "stated": "less"},), "abs-good", "expected"),
    (({**GOOD, "stated": "peak-inside"},), "abs-good", "expected"),
    (({**GOOD, "stated": "equal", "expected": "0", "note": "why"},), "abs-good", "margin"),
    (({**GOOD, "margin": "0.001"},), "abs-good", "margin"),
    (({**GOOD, "stated": "equal", "expected": "0", "margin": "0.001"},), "abs-good", "note"),
    (({**GOOD, "home": ""},), "abs-good", "home"),
    (({**GOOD, "home": "07_postprocessing"},), "abs-good", "home"),
    (({**GOOD, "status": NOT_TESTABLE + "no ResNet-101"},), "abs-good", "home"),
    (({**GOOD, "status": "maybe", "home": ""},), "abs-good", "status"),
    (({**GOOD, "status": NOT_TESTABLE, "home": ""},), "abs-good", "status"),
    (({**GOOD, "conflicts": "abs-unknown"},), "abs-good", "conflicts"),
    (({**GOOD, "conflicts": "abs-other"}, OTHER), "abs-good", "conflicts"),
    (({**GOOD, "conflicts": "abs-good"},), "abs-good", "conflicts"),
    (({**GOOD, "quote": "Most of predicted boxes are perfect"},), "abs-good", "quote"),
    (({**GOOD, "id": "Abs_Good"},), "Abs_Good", "id"),
    (({**GOOD, "same_as": "abs-unknown"},), "abs-good", "same_as"),
    ((GOOD, {**OTHER, "same_as": "abs-good", "stated": "less", "expected": "-1"}), "abs-other", "stated"),
    ((GOOD, {**OTHER, "same_as": "abs-good", "home": "04_main_results"}), "abs-other", "home"),
    (({**GOOD, "same_as": "abs-other"}, {**OTHER, "same_as": "abs-third"}, {**GOOD, "id": "abs-third"}), "abs-good", "same_as"),
    (({**GOOD, "status": "not computed yet", "home": ""},), "abs-good", "home"),
]


@pytest.mark.parametrize("rows, claim_id, field", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_a_malformed_row_is_refused_naming_file_id_and_field(tmp_path: Path, rows, claim_id: str,
                                                             field: str) -> None:
    path = _write(tmp_path, *rows)
    with pytest.raises(ValueError) as err:
        load_claims(path)
    message = str(err.value)
    assert str(path.resolve()) in message
    assert repr(claim_id) in message
    assert f"field {field!r}" in message


def test_a_wrong_header_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text("id,section,quote\nabs-good,Abstract,Most of predicted boxes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header") as err:
        load_claims(path)
    assert str(path.resolve()) in str(err.value)


def test_quotes_match_across_the_papers_line_breaks(tmp_path: Path) -> None:
    # the paper breaks "classification\n\nconfidence" across a page: whitespace runs match one space
    quote = "the predicted boxes with higher classification   confidence have worse IoU"
    assert load_claims(_write(tmp_path, {**GOOD, "quote": quote}))["abs-good"].quote == quote


def test_every_claim_marked_tested_is_computed_on_its_home_page_and_no_page_cites_another() -> None:
    """The registry's status says which claims a page computes: each 'tested' claim (that is not a
    restatement) is cited by its home notebook, and every id a notebook cites is a computed claim."""
    import json
    import re

    from analysis.paper.claims import load_claims

    root = Path(__file__).resolve().parents[2]
    cited: dict[str, set[str]] = {}
    for nb in sorted((root / "notebooks").glob("0*.ipynb")):
        source = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        ids = set(re.findall(r'"((?:abs|intro|s2|s3|t[1-6]|conc)-[a-z0-9-]+)"', source))
        if "SIZE_CLAIMS" in source:  # page 04 builds these ids from a prefix and a suffix
            suffixes = re.findall(r'"[A-Za-z0-9]+": "([a-z0-9-]+)"', source.split("SIZE_CLAIMS = ", 1)[1].split("}", 1)[0])
            ids |= {f"{p}-{s}" for p in ("t1-iou-aware", "t1-conf") for s in suffixes}
        cited[nb.stem] = ids - {"t1-iou-aware", "t1-conf"}
    claims = load_claims()
    everywhere = set().union(*cited.values())
    assert not everywhere - set(claims), sorted(everywhere - set(claims))
    for c in claims.values():
        if c.computed and not c.same_as:
            assert c.id in cited.get(c.home, set()), f"{c.id}: marked tested, not computed on {c.home}"
    for page, ids in cited.items():
        for claim_id in ids:
            assert claims[claim_id].computed and not claims[claim_id].same_as, (page, claim_id)

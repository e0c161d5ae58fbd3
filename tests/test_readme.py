"""retconf.readme: the numbers README.md and docs/ quote from a report set come from its data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retconf import readme


def test_every_generated_block_matches_the_committed_reports() -> None:
    """The README's result table and the docs' claim tables equal what the committed pages' data
    give: a regeneration that moves a number fails here until `python -m retconf.readme` is run."""
    assert readme.main(["--check"]) == 0
    blocks = [m.group("name") for doc in readme.documents() for m in readme.BLOCK.finditer(doc.read_text())]
    assert "results" in blocks and "claims-01" in blocks  # the README's headline and page 01's claims


def _page(reports: Path, name: str, findings: list[dict], numbers: dict) -> None:
    (reports / f"{name}.json").write_text(json.dumps({"page": name, "findings": findings, "numbers": numbers}))


def _finding(claim_id: str, claim: str, mean: float, verdict: str, home: str, evidence: str = "x = 1") -> dict:
    return {"claim": claim, "verdict": verdict, "evidence": evidence, "own": False, "claim_id": claim_id,
            "quote": "q", "section": "s", "home": home, "values": [mean], "seeds": [0], "mean": mean,
            "lo": mean - 0.01, "hi": mean + 0.01, "fragile": "", "also": []}


def test_a_moved_number_is_caught_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports" / "tiny"
    reports.mkdir(parents=True)
    ap = {"retinanet": {"seeds": [0, 1], "values": [0.30, 0.32]}, "retinanet_conf": {"seeds": [0, 1], "values": [0.31, 0.33]}}
    _page(reports, "04_main_results", [
        _finding("abs-conf-improves-ap-r50", "AP(RetinaNet-Conf) − AP(RetinaNet)", 0.01, "reproduced", "04_main_results",
                 "AP(retinanet_conf) − AP(retinanet) = +0.010; the paper's value: +0.007"),
        _finding("t3-product-gain-ce", "AP(x) − AP(y)", 0.5, "reproduced", "03_ablations")], {"AP": ap, "AP cls-only": ap})
    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- results:begin -->\nold\n<!-- results:end -->\nend\n")
    monkeypatch.setattr(readme, "CHECKOUT", tmp_path)
    monkeypatch.setattr(readme, "documents", lambda root=tmp_path: [doc])
    assert readme.main(["--check", "--reports", str(reports)]) == 1 and "old" in doc.read_text()
    assert readme.main(["--reports", str(reports)]) == 0
    text = doc.read_text()
    assert "| RetinaNet | 0.310 ± 0.014 |" in text and "| RetinaNet-Conf | 0.320 ± 0.014 |" in text
    assert "`abs-conf-improves-ap-r50`" in text and "+0.007" in text and "reproduced" in text
    assert "t3-product-gain-ce" not in text  # counted on its home page, not this one
    assert text.startswith("intro\n") and text.endswith("end\n")
    assert readme.main(["--check", "--reports", str(reports)]) == 0
    doc.write_text("<!-- nonsense:begin -->\n<!-- nonsense:end -->\n")
    with pytest.raises(SystemExit, match="unknown generated block 'nonsense'"):
        readme.main(["--reports", str(reports)])
    shutil.rmtree(reports)
    doc.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    with pytest.raises(SystemExit, match="04_main_results.json: cannot read"):
        readme.main(["--reports", str(reports)])


def test_the_families_tables_come_from_page_06(tmp_path: Path) -> None:
    families = tmp_path / "families"
    families.mkdir()
    row = {"model": "fcos", "head": "FCOSHead", "quality score": "centerness", "ranks by": "cls·q (after top-k)", "seeds": 2,
           "AP": 0.3321, "AP_sd": 0.0004, "AP cls only": 0.319, "AP cls only_sd": 0.002, "AP IoU oracle": 0.369,
           "AP IoU oracle_sd": 0.003, "wrong-survivor rate": 0.346, "wrong-survivor rate_sd": 0.001,
           "cls~IoU": 0.241, "cls~IoU_sd": 0.001, "quality~IoU": None, "quality~IoU_sd": None}
    _page(families, "06_families", [], {"families": [row]})
    text = readme.families_block(tmp_path / "tiny")
    assert "| fcos | centerness | cls·q (after top-k) | 2 | 0.332 ± 0.000 | 0.319 ± 0.002 | 0.369 ± 0.003 | 0.346 ± 0.001 |" in text
    assert "| fcos | FCOSHead | 0.241 ± 0.001 | NaN |" in text


def test_the_decisive_summary_comes_from_the_decisive_page_04(tmp_path: Path) -> None:
    """Seed count, half-widths of the detector AP comparisons (each quantity once) against the
    ±0.005 target, and the registry tally, all read from ``tiny-decisive``'s page 04."""
    decisive = tmp_path / "tiny-decisive"
    decisive.mkdir()

    def f(claim_id: str, what: str, half: float, verdict: str = "inconclusive at 4 seeds") -> dict:
        return {**_finding(claim_id, "c", 0.001, verdict, "04_main_results", f"{what} = +0.001"),
                "seeds": [0, 1, 2, 3], "values": [0.0] * 4, "lo": 0.001 - half, "hi": 0.001 + half}

    _page(decisive, "04_main_results", [
        f("t1-iou-aware-improves-ap", "AP(iou_aware, cls) − AP(retinanet)", 0.004),
        f("s3-iou-aware-same-classification", "AP(iou_aware, cls) − AP(retinanet)", 0.004),  # the same quantity
        f("abs-conf-improves-ap-r50", "AP(retinanet_conf) − AP(retinanet)", 0.006, "reproduced"),
        f("t1-conf-ap75-rises", "AP75(retinanet_conf, cls) − AP75(retinanet)", 0.012)], {})
    (decisive / "04_main_results.html").write_text("")
    text = readme.decisive_block(tmp_path / "tiny", tmp_path)
    assert "**4 seeds**" in text
    assert "the 2 comparisons of one detector's AP with another's are ±0.0040 to ±0.0060 (1 of 2 within ±0.005" in text
    assert "1 of 2 resolved)" in text
    assert "±0.0040 to ±0.0120 over all 3 quantities of page 04" in text
    assert "1 reproduced" in text

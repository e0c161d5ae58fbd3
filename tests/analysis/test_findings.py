"""Findings blocks (analysis/paper/findings.py): verdicts from per-seed numbers, by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.paper.findings import NOT_REPRODUCED, REPRODUCED, claim, interval, not_measured, render, verdict


def test_interval_is_the_paired_t_interval() -> None:
    mean, sd, half, n = interval([0.01, 0.02, 0.03])
    assert (mean, n) == (pytest.approx(0.02), 3)
    assert sd == pytest.approx(0.01)
    assert half == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)


@pytest.mark.parametrize("values, expected, want", [
    ([0.010, 0.012, 0.011], 1, REPRODUCED),           # every seed and the interval above 0
    ([0.010, 0.012, 0.011], -1, NOT_REPRODUCED),      # the same numbers against the opposite claim
    ([-0.02, -0.03, -0.025], 1, NOT_REPRODUCED),
    ([0.03, -0.02, 0.01], 1, "inconclusive at 3 seeds"),  # the interval holds 0
    ([0.5], 1, "inconclusive at 1 seed"),               # no spread from one seed
    ([], 1, "not measured"),
])
def test_verdict_flips_with_the_numbers(values, expected, want) -> None:
    assert verdict(values, expected) == want


def test_equivalence_claims_use_the_margin() -> None:
    assert verdict([0.001, -0.002, 0.0005], margin=0.01) == REPRODUCED
    assert verdict([0.03, 0.031, 0.029], margin=0.01) == NOT_REPRODUCED
    assert verdict([0.004, 0.012, -0.006], margin=0.01) == "inconclusive at 3 seeds"
    # an interval that excludes 0 but reaches inside ± m decides nothing (95 % two-sided convention)
    assert verdict([0.008, 0.012, 0.010], margin=0.01) == "inconclusive at 3 seeds"
    assert verdict([-0.008, -0.012, -0.010], margin=0.01) == "inconclusive at 3 seeds"
    assert verdict([-0.03, -0.031, -0.029], margin=0.01) == NOT_REPRODUCED


def test_claim_against_a_reference_states_the_number_and_spread() -> None:
    f = claim("most boxes score low", [0.8, 0.82, 0.81], "share", reference=0.5)
    assert f.verdict == REPRODUCED
    assert f.evidence.startswith("share = 0.810 ± 0.010 over 3 seeds") and "3/3 seeds above 0.5" in f.evidence
    assert f.evidence.endswith("; per seed: 0 0.8, 1 0.82, 2 0.81")  # the values behind the verdict
    flipped = claim("most boxes score low", [0.2, 0.22, 0.21], "share", reference=0.5)
    assert flipped.verdict == NOT_REPRODUCED
    one = claim("x beats y", [0.01], "AP(x) − AP(y)")
    assert one.verdict == "inconclusive at 1 seed" and one.evidence == "AP(x) − AP(y) = +0.010 (one seed: no spread)"


def test_the_interval_of_a_share_stays_inside_0_and_1() -> None:
    f = claim("most boxes score low", [0.99, 0.90, 0.999], "share", reference=0.5, bounds=(0.0, 1.0))
    assert "… 1.000;" in f.evidence and "… 1.1" not in f.evidence
    assert "… 1.099" in claim("x", [0.99, 0.90, 0.999], "share", reference=0.5).evidence  # unclipped: past 1
    assert f.evidence.endswith("per seed: 0 0.99, 1 0.9, 2 0.999")  # the shares themselves, not minus 0.5


def test_a_seed_without_a_value_is_named_with_its_reason_not_dropped() -> None:
    f = claim("fused is better calibrated", [-0.02, float("nan")], "D-ECE(fused) − D-ECE(cls)", expected=-1,
              seeds=[3, 7], missing={7: "D-ECE of fused undefined (0 detections pass the threshold)"})
    assert f.verdict == "inconclusive at 1 seed"  # one value left: still judged, and says why
    assert "per seed: 3 -0.02, 7 undefined" in f.evidence
    assert f.evidence.endswith("; seed 7 left out: D-ECE of fused undefined (0 detections pass the threshold)")
    none = claim("x", [float("nan"), float("nan")], "d", missing={0: "no box", 1: "no box"})
    assert none.verdict == "not measured" and none.evidence == "d: no value in this run (undefined on every seed: no box)"
    assert claim("x", [float("nan")] * 2, "d").evidence == "d: no value in this run (undefined on every seed)"
    unexplained = claim("x", [float("nan"), 0.1, 0.2], "d")
    assert "seed 0 left out: undefined on that seed" in unexplained.evidence
    with pytest.raises(ValueError, match="2 values for 3 seeds"):
        claim("x", [0.1, 0.2], "d", seeds=[0, 1, 2])


def test_render_is_one_findings_div_with_every_claim_escaped() -> None:
    html = render([claim("a < b", [0.01, 0.02], "d"), not_measured("CE beats L1", "needs --full")], "note")
    assert html.startswith('<div class="findings">') and html.count('<li class="paper">') == 2
    assert "a &lt; b" in html and "<b>not measured</b>" in html


def test_paired_claims_compare_each_model_with_the_base_seed_by_seed() -> None:
    from analysis.paper.findings import paired_claims

    df = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1, 2, 2], "model": ["r", "c", "i"] * 2 + ["r", "c"],
                       "rate": [0.5, 0.3, 0.45, 0.6, 0.35, 0.5, 0.55, 0.3]})
    conf, iou = paired_claims(df, "rate", "r", "{model} lowers the rate of {base}", "rate({model}) − rate({base})",
                              expected=-1)
    assert conf.claim == "c lowers the rate of r" and conf.verdict == REPRODUCED
    assert "per seed: 0 -0.2, 1 -0.25, 2 -0.25" in conf.evidence
    assert iou.verdict == "inconclusive at 2 seeds" and "seed 2 left out" in iou.evidence  # i missing on seed 2
    assert paired_claims(df, "rate", "absent", "x", "y") == []


def test_a_difference_claim_prints_its_half_width_and_the_seeds_that_would_resolve_it() -> None:
    from analysis.paper.findings import claim

    open_ = claim("x", [0.01, 0.05, 0.02], "AP(a) − AP(b)")
    assert open_.verdict == "inconclusive at 3 seeds"
    assert "; half-width ±0.052; resolving +0.027 needs about 5 seeds at this spread; per seed:" in open_.evidence
    shut = claim("x", [0.01, 0.012, 0.011], "AP(a) − AP(b)")
    assert shut.verdict == "reproduced" and "half-width ±0.002; per seed" in shut.evidence
    assert "needs" not in shut.evidence  # already resolved: no power line
    assert "half-width" not in claim("x", [0.01], "d").evidence  # one seed has no spread
    assert "needs" not in claim("x", [0.001, -0.001, 0.0], "d", margin=0.01).evidence  # equivalence: no power line
    zero = claim("x", [0.0, 0.0, 0.0], "d")  # a degenerate run (nothing detected): no seed count resolves it
    assert "half-width ±0.000; a mean of exactly 0 is resolved by no number of seeds" in zero.evidence


def test_a_verdict_near_its_boundary_is_marked_fragile_by_the_measured_path_shift() -> None:
    from analysis.paper.findings import fragility

    # interval +0.0050 … +0.0150: resolved, but a shift of 0.012 / √3 = 0.0069 brings it past 0
    values = [0.008, 0.012, 0.010]
    assert verdict(values) == REPRODUCED
    assert "another numeric path may make this inconclusive" in fragility(values, path_shift=0.012)
    assert fragility(values, path_shift=0.0001) == ""  # far from the boundary at that shift
    assert fragility(values) == ""  # no measured shift: nothing said
    assert fragility([0.03, -0.02, 0.01], path_shift=0.5) == ""  # inconclusive: nothing to lose
    f = claim("x beats y", values, "AP(x) − AP(y)", path_shift=0.012)
    assert f.fragile and f.verdict == REPRODUCED
    assert (f.mean, f.values, f.seeds) == (pytest.approx(0.01), (0.008, 0.012, 0.010), (0, 1, 2))


def test_own_questions_sit_in_their_own_block_and_the_page_data_travels_with_the_html() -> None:
    import json
    import re

    from analysis.paper.findings import Finding, render

    paper_here = Finding("AP(c) − AP(r)", REPRODUCED, "ev", claim_id="t1-x", quote="improve AP", section="Table 1",
                         home="04_main_results", values=(0.1, float("nan")), seeds=(0, 1))
    paper_there = Finding("AP(0.4) − AP(cls)", REPRODUCED, "ev", claim_id="t4-y", quote="q", section="Table 4",
                          home="03_ablations")
    own = claim("q holds", [0.1, 0.11, 0.12], "d", own=True)
    page = render([paper_here, paper_there, own], page="04_main_results", numbers={"AP": {"r": [0.3, float("nan")]}})
    assert page.index("The paper's claims") < page.index("counted on another page") < page.index('class="own-questions"')
    assert '<a href="03_ablations.html">' in page and "<code>t1-x</code>" in page and "“improve AP”" in page
    data = json.loads(re.search(r'class="retconf-findings">(.*?)</script>', page, re.S).group(1))
    assert [f["claim_id"] for f in data["findings"]] == ["t1-x", "t4-y", ""]
    assert data["findings"][0]["values"] == [0.1, None] and data["numbers"] == {"AP": {"r": [0.3, None]}}
    assert data["page"] == "04_main_results"
    # nothing the page says can close the script early
    tricky = render([claim("a </script> b", [0.1, 0.2], "d")])
    assert tricky.count("</script>") == 1

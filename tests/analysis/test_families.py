"""analysis.studies.families: the cross-family page's text helpers (its numbers are tested on a fake
families run in tests/test_report.py)."""
from __future__ import annotations

import pytest

from analysis.studies.families import ranking_formula

GEO = {"mode": "geo", "alpha": 0.5, "thr": 0.5, "order": "before_topk"}


@pytest.mark.parametrize("meta, text", [
    ({}, "cls"),
    ({"fusion": {"mode": "mul", "order": "after_topk"}}, "cls·q (after top-k)"),
    ({"fusion": GEO}, "sqrt(cls·q)"),
    ({"fusion": GEO, "post_process": {"selection": "anchors", "score_voting": True}},
     "sqrt(cls·q) (top-k anchors; score voting)"),
    ({"fusion": {"mode": "mul"}, "post_process": {"selection": "argmax", "score_voting": False}},
     "cls·q (one class per anchor)"),
])
def test_ranking_formula_names_the_heads_own_post_processing(meta: dict, text: str) -> None:
    assert ranking_formula(meta) == text

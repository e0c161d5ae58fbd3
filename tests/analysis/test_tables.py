"""Rows of the paper's tables from one dump (the layouts the notebooks set beside the paper)."""
from __future__ import annotations

from analysis.rescore import inference_kwargs
from analysis.tables import alpha_table, fusion_table


def test_fusion_table_rows_are_the_papers_table4_rows(conf_run: dict) -> None:
    d = conf_run["dump"]
    table = fusion_table(d.candidates, conf_run["ann"], d.meta["classes"], **inference_kwargs(d.meta))
    assert table["fusion"].tolist() == ["cls", "cls(obj>0.5)", "cls*obj", "cls*obj(obj>0.5)",
                                      "product(alpha=0.4;obj>0.5)", "product(alpha=0.4)"]


def test_alpha_table_layout(conf_run: dict) -> None:
    d = conf_run["dump"]
    table = alpha_table({"retinanet_conf": d, "again": d}, alphas=[0.0, 0.4])
    assert list(table.columns[:3]) == ["alpha", "model", "AP"]
    assert table[["alpha", "model"]].values.tolist() == [[0.0, "again"], [0.0, "retinanet_conf"],
                                                         [0.4, "again"], [0.4, "retinanet_conf"]]

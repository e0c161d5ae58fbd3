"""How many report pages run at once: fewer where their memory would not fit (retconf/report.py)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retconf.report import largest_dump_rows, memory_budget, next_page, page_memory_gb


def _dump(root: Path, name: str, shard_rows: list[int]) -> Path:
    d = root / name
    d.mkdir()
    for i, n in enumerate(shard_rows):
        pq.write_table(pa.table({"cls": [0.5] * n}), d / f"candidates-{i:05d}.parquet")
    (d / "metadata.json").write_text("{}")
    return d / "metadata.json"


def test_largest_dump_rows_sums_the_shards_of_each_dump(tmp_path: Path) -> None:
    files = [_dump(tmp_path, "a", [3, 4]), _dump(tmp_path, "b", [10]), tmp_path / "gone" / "metadata.json"]
    assert largest_dump_rows(files) == 10
    assert largest_dump_rows([]) == 0


def test_a_page_starts_beside_the_running_ones_only_where_their_memory_fits() -> None:
    assert next_page([8.0, 3.0], [], 10.0) == 0  # nothing running: the first starts
    assert next_page([8.0, 3.0], [6.0], 10.0) == 1  # the first does not fit beside 6 GB; the second does
    assert next_page([8.0, 5.0], [6.0], 10.0) is None  # none fits: wait
    assert next_page([20.0], [], 10.0) == 0  # larger than the budget, alone: it runs
    assert next_page([8.0], [9.0], None) == 0  # no budget: as many as there are workers


def test_the_budget_is_said_only_where_it_keeps_pages_apart(monkeypatch) -> None:
    from retconf import report

    monkeypatch.setattr(report, "PAGE_MEMORY", {"01": (1.0, 0.3), "07": (1.0, 0.05)})
    rows = 26_281_277  # the largest dump of the 5,000-image set of benchmarks/coco_scale.py
    assert page_memory_gb(rows, "01_misalignment") == pytest.approx(1.0 + 0.3 * 26.281277)
    assert page_memory_gb(rows, "04_main_results") == pytest.approx(report.PAGE_BASE_GB + report.PAGE_GB_PER_MILLION_ROWS * 26.281277)
    pages = ["01_misalignment", "07_postprocessing", "explore"]  # 8.9, 2.3 and (not fitted here) the most
    most = report.PAGE_BASE_GB + report.PAGE_GB_PER_MILLION_ROWS * 26.281277
    budget, why = memory_budget(pages[:2], 2, rows, 16.0)
    assert budget == 0.8 * 16.0 and why is None  # 8.9 + 2.3 GB fit in 12.8 GB
    budget, why = memory_budget(pages, 2, rows, 16.0)
    assert why.startswith("pages run side by side only where their estimated peaks fit in 12.8 GB")
    assert f"the largest page about {most:.1f} GB" in why and "26.3 M candidates" in why
    assert why.endswith("--jobs N or --memory-gb GB overrides")
    budget, why = memory_budget(pages, 2, rows, 16.0, memory_gb=8.0)  # --memory-gb: its budget, said so
    assert budget == 8.0 and "fit in 8.0 GB (--memory-gb;" in why
    assert memory_budget(pages, 2, rows, None, memory_gb=20.0) == (20.0, None)
    assert memory_budget(pages, 1, rows, 16.0) == (None, None)  # one at a time anyway
    assert memory_budget(pages, 2, rows, None) == (None, None)  # no /proc/meminfo: as asked


def test_the_page_estimates_are_the_committed_benchmarks_fit() -> None:
    """retconf.report.PAGE_MEMORY is the line through each page's measured peaks
    (reports/benchmarks/coco_scale.json): rerunning the benchmark without updating it fails here."""
    import importlib.util
    import json

    from retconf import report
    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("coco_scale", ROOT / "benchmarks" / "coco_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fit = mod.page_memory_fit(json.loads((ROOT / "reports" / "benchmarks" / "coco_scale.json").read_text()))
    assert fit == report.PAGE_MEMORY


def test_a_memory_budget_that_is_not_positive_is_refused(capsys) -> None:
    from retconf.cli import main

    assert main(["report", "runs/none", "--memory-gb", "0"]) == 2
    assert "--memory-gb: must be a positive number of GB, got 0.0" in capsys.readouterr().err

"""How many report pages run at once: fewer where their memory would not fit (retconf/report.py)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from retconf.report import largest_dump_rows, memory_jobs, page_memory_gb


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


def test_pages_run_fewer_at_once_where_their_memory_would_not_fit() -> None:
    # the 5,000-image COCO-shaped set of benchmarks/coco_scale.py: 26.3 M rows in its largest dump
    each = page_memory_gb(26_281_277)
    assert 9.0 < each < 9.5  # the explorer measured 9.39 GB there
    assert memory_jobs(2, 26_281_277, 16.0)[0] == 1
    jobs, why = memory_jobs(4, 26_281_277, 16.0)
    assert jobs == 1 and "pages run 1 at a time, not 4" in why and "--jobs N overrides" in why
    assert memory_jobs(2, 1_576_859, 21.0) == (2, None)  # the tiny run: both cores
    assert memory_jobs(2, 26_281_277, None) == (2, None)  # no /proc/meminfo: as asked
    assert memory_jobs(1, 26_281_277, 1.0) == (1, None)

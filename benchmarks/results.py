"""Writing a benchmark's results: ``OUT.json`` (every measurement) and ``OUT.md`` (the table a
reader sees), the markdown also printed."""
from __future__ import annotations

import json
from pathlib import Path


def write_results(out: str | Path, result: dict, markdown: str) -> None:
    """Write ``result`` to ``out`` + ``.json`` and ``markdown`` to ``out`` + ``.md`` (parent
    directories made), and print the markdown."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown)
    print(markdown)

"""Loading prediction dumps written by ``retconf dump`` (schema-validated)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .schema import KINDS, SCHEMA_VERSION


class DumpError(ValueError):
    """A dump directory that is incomplete or does not match its schema."""


@dataclass
class Dump:
    """One detector's dump: ``candidates`` (pre-NMS), ``detections`` (post-NMS), ``images``."""

    path: Path
    meta: dict
    candidates: pd.DataFrame
    detections: pd.DataFrame
    images: pd.DataFrame


def run_path(run_dir: str | Path) -> Path:
    """A run directory as given, or relative to the project root when it is not found from the
    current directory (notebooks opened in JupyterLab run inside ``notebooks/``)."""
    path = Path(run_dir)
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parents[1] / path


def read_json(path: Path, fields: tuple[str, ...], if_missing: str) -> dict:
    """A JSON object file with the required ``fields``.

    Raises:
        DumpError: naming the file and what is wrong (missing, not JSON, a missing field);
            ``if_missing`` says what a missing file means.
    """
    if not path.is_file():
        raise DumpError(f"{path}: missing ({if_missing})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DumpError(f"{path}: not valid JSON ({e.msg})") from e
    if not isinstance(record, dict):
        raise DumpError(f"{path}: expected a JSON object, got {type(record).__name__}")
    for field in fields:
        if field not in record:
            raise DumpError(f"{path}: missing field {field!r}")
    return record


def _check(df: pd.DataFrame, schema: dict, where: str) -> None:
    for column, dtype in schema.items():
        if column not in df.columns:
            raise DumpError(f"{where}: missing column {column!r}")
        if str(df[column].dtype) != dtype:
            raise DumpError(f"{where}: column {column!r} has dtype {df[column].dtype}, expected {dtype}")


def load_dump(path: str | Path) -> Dump:
    """Read and validate a dump directory.

    Raises:
        DumpError: naming the file and the column (or field) that is wrong.
    """
    path = Path(path)
    meta_file = path / "metadata.json"
    meta = read_json(meta_file, ("schema", "num_shards", "complete"),
                     "the dump is incomplete; rerun `retconf dump` to resume")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DumpError(f"{meta_file}: schema_version {meta.get('schema_version')!r}, this analysis reads "
                        f"{SCHEMA_VERSION} (ground truth in original-image pixels); rerun `retconf dump`")
    frames = {}
    for kind in KINDS:
        parts = []
        for shard in range(meta["num_shards"]):
            f = path / f"{kind}-{shard:05d}.parquet"
            if not f.is_file():
                raise DumpError(f"{f}: missing shard")
            try:
                df = pd.read_parquet(f)
            except Exception as e:  # noqa: BLE001 - pyarrow raises several types
                raise DumpError(f"{f}: cannot be read as Parquet ({e})") from e
            _check(df, meta["schema"][kind], str(f))
            parts.append(df)
        frames[kind] = pd.concat(parts, ignore_index=True)
    return Dump(path, meta, frames["candidates"], frames["detections"], frames["images"])

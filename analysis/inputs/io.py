"""Loading prediction dumps written by ``retconf dump`` (schema-validated)."""
from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from .paths import run_path
from .schema import BY_IOU, SCHEMA_VERSION, SELECTED


class DumpError(ValueError):
    """A dump directory that is incomplete or does not match its schema."""


# metadata.json field: SHA-256 of the annotation file the dump matched its boxes against
ANN_HASH_FIELD = "ann_sha256"
_ann_hashes: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> SHA-256
_warned_unhashed: set[str] = set()


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of ``path``, computed once per (path, size, modification time)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _ann_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _ann_hashes[key] = h.hexdigest()
    return _ann_hashes[key]


def annotation_file(meta: dict, where: str | Path) -> str:
    """The annotation file a dump (its ``meta``, read from ``where``) was matched against, as a
    path to read, after checking that it is that file: its SHA-256 must equal the metadata's
    ``ann_sha256`` (the dump's IoU columns and ground-truth indices describe the file it was
    matched against). A dump written before the hash was recorded is let through with one
    warning on stderr per dump (none where ``$RETCONF_UNHASHED_ANN_WARNED`` is 1: ``retconf
    report`` warned before starting the pages). A relative ``ann_file`` is resolved like a run directory
    (:func:`analysis.inputs.paths.run_path`).

    Raises:
        DumpError: naming the file and the field: missing, or changed / another file.
    """
    if not meta.get("ann_file"):
        raise DumpError(f"{where}: missing field 'ann_file' (the annotation file the dump was matched against)")
    path = run_path(meta["ann_file"])
    if not path.is_file():
        raise DumpError(f"{path}: missing (field 'ann_file' of {where}); pass the file where it is now "
                        "(retconf report --ann-file FILE)")
    recorded = meta.get(ANN_HASH_FIELD)
    if recorded is None:
        import os

        if str(where) not in _warned_unhashed and os.environ.get("RETCONF_UNHASHED_ANN_WARNED") != "1":
            _warned_unhashed.add(str(where))
            print(f"warning: {where}: no field {ANN_HASH_FIELD!r} (dumped before annotation files were hashed): "
                  f"cannot check that {path} is the file it was matched against", file=sys.stderr)
        return str(path)
    actual = file_sha256(path)
    if actual != recorded:
        raise DumpError(f"{path}: SHA-256 {actual[:12]}… differs from field {ANN_HASH_FIELD!r} of {where} "
                        f"({recorded[:12]}…): a changed or different annotation file; the dump's IoU columns "
                        "describe the one it was matched against (rerun `retconf dump`)")
    return str(path)


class PostNMS(Protocol):
    """What the post-NMS analyses read: a :class:`Dump`, or a COCO results file
    (:class:`analysis.measures.results.Results`, which has no candidates)."""

    path: Path
    meta: dict
    detections: pd.DataFrame

    def ann_file(self) -> str: ...


@dataclass
class Dump:
    """One detector's dump: ``candidates`` (pre-NMS: the pairs a ranking rule keeps),
    ``detections`` (post-NMS), ``images``, and ``iou_population``: one row per anchor whose box
    overlaps a ground truth with IoU ≥ ``meta['iou_population']``, labelled with that ground
    truth's class, whatever its scores (None for dumps written before it was recorded)."""

    path: Path
    meta: dict
    candidates: pd.DataFrame
    detections: pd.DataFrame
    images: pd.DataFrame
    iou_population: pd.DataFrame | None = None

    @property
    def meta_file(self) -> Path:
        """The dump's ``metadata.json`` (what errors about its fields name)."""
        return self.path / "metadata.json"

    def ann_file(self) -> str:
        """The dump's annotation file, checked against its recorded hash (:func:`annotation_file`)."""
        return annotation_file(self.meta, self.meta_file)


def split_population(cands: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(the rule-selected candidates, the IoU-chosen population) of a dump's candidate rows by
    their ``population`` bits (:mod:`analysis.inputs.schema`); a frame without the column is all
    selected, with no population."""
    if "population" not in cands:
        return cands, None
    bits = cands["population"].to_numpy().astype(np.int64)
    keep = lambda mask: cands[mask].drop(columns="population").reset_index(drop=True)  # noqa: E731
    return keep((bits & SELECTED) > 0), keep((bits & BY_IOU) > 0)


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


def _check_shard_ids(f: Path, kind: str, shard: int, ids: np.ndarray, written: list[list[int]],
                     owner: dict[int, int]) -> None:
    """Raise :class:`DumpError` naming ``f`` when its image ids are not the ones the dump wrote
    into shard ``shard`` (``written[shard]``; ``owner`` maps each written id to its shard): a copy
    of another shard, a shard of another dump, missing or duplicated images."""
    own, present = set(written[shard]), set(ids.tolist())
    foreign = sorted(present - set(owner))
    if foreign:
        raise DumpError(f"{f}: holds image ids that are not in this dump (e.g. {foreign[0]}): a shard of "
                        "another dump?")
    strays = sorted(present - own)
    if strays:
        j = owner[strays[0]]
        raise DumpError(f"{f}: holds image {strays[0]} of shard {j}, not of shard {shard} "
                        f"(a copy of {kind}-{j:05d}.parquet?)")
    if kind == "images":
        if len(ids) != len(present):
            raise DumpError(f"{f}: repeats image ids ({len(ids)} rows for {len(present)} images)")
        if present != own:
            missing = sorted(own - present)
            raise DumpError(f"{f}: lacks {len(missing)} of the shard's {len(own)} images (e.g. {missing[0]})")


def _read_shard(f: Path) -> tuple[pd.DataFrame, str]:
    """A shard's table and the SHA-256 of its bytes (one read)."""
    if not f.is_file():
        raise DumpError(f"{f}: missing shard")
    data = f.read_bytes()
    try:
        return pd.read_parquet(io.BytesIO(data)), hashlib.sha256(data).hexdigest()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise DumpError(f"{f}: cannot be read as Parquet ({e})") from e


def _dump_header(path: Path) -> tuple[dict, list[list[int]], dict[int, int]]:
    """A dump directory's checked ``metadata.json``, the image ids written into each shard and
    the shard of each image id.

    Raises:
        DumpError: naming the file and the field (incomplete dump, older schema, shard records
            that do not add up).
    """
    meta_file = path / "metadata.json"
    meta = read_json(meta_file, ("schema", "num_shards", "complete"),
                     "the dump is incomplete; rerun `retconf dump` to resume")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DumpError(f"{meta_file}: schema_version {meta.get('schema_version')!r}, this analysis reads "
                        f"{SCHEMA_VERSION} (ground truth in original-image pixels); rerun `retconf dump`")
    records = meta.get("shards")
    if records is None:
        raise DumpError(f"{meta_file}: missing field 'shards' (the per-shard records)")
    if len(records) != meta["num_shards"] or sum(len(r["image_ids"]) for r in records) != meta.get("num_images"):
        raise DumpError(f"{meta_file}: its shard records do not add up to num_shards "
                        f"{meta['num_shards']} and num_images {meta.get('num_images')}")
    written = [r["image_ids"] for r in records]
    return meta, written, {i: j for j, w in enumerate(written) for i in w}


def _checked_shard(path: Path, meta: dict, kind: str, shard: int, written: list[list[int]],
                   owner: dict[int, int]) -> pd.DataFrame:
    """One shard's table of ``kind`` (images, candidates, detections), checked against the
    metadata's record of it: columns and dtypes, image ids, SHA-256 of the file.

    Raises:
        DumpError: naming the shard file and what is wrong.
    """
    f = path / f"{kind}-{shard:05d}.parquet"
    df, digest = _read_shard(f)
    _check(df, meta["schema"][kind], str(f))
    _check_shard_ids(f, kind, shard, df["image_id"].to_numpy(), written, owner)
    recorded = meta["shards"][shard]["sha256"][kind]
    if digest != recorded:
        raise DumpError(f"{f}: differs from the file the dump wrote (SHA-256 {digest[:12]}… "
                        f"instead of {recorded[:12]}…): replaced or modified after dumping")
    return df


def load_dump(path: str | Path) -> Dump:
    """Read and validate a dump directory.

    Each shard is checked against the metadata's record of it: its image ids (a replaced,
    duplicated, missing or foreign shard is named) and each file's SHA-256 (any other change
    after dumping). Dumps of an older schema are refused (rerun ``retconf dump``).

    Raises:
        DumpError: naming the file and the column (or field, or shard) that is wrong.
    """
    path = Path(path)
    meta, written, owner = _dump_header(path)
    frames = {}
    for kind in ("images", "candidates", "detections"):
        parts = []
        for shard in range(meta["num_shards"]):
            df = _checked_shard(path, meta, kind, shard, written, owner)
            # candidates: split per shard, so that the whole table and its two parts are never
            # held at once (a third less memory at load)
            parts.append(split_population(df) if kind == "candidates" else df)
            del df
        if kind == "candidates":
            selected = pd.concat([c for c, _ in parts], ignore_index=True)
            chosen = [p for _, p in parts]
            population = None if not chosen or chosen[0] is None else pd.concat(chosen, ignore_index=True)
            parts.clear()
        else:
            frames[kind] = pd.concat(parts, ignore_index=True)
    return Dump(path, meta, selected, frames["detections"], frames["images"], population)


@dataclass
class DumpShards:
    """A dump read one shard at a time (:meth:`__iter__`), for the analyses whose result per image
    does not depend on the other images (e.g. the post-processing replay of
    :mod:`analysis.studies.postprocess`): memory holds one shard's rows, not the dump's.
    ``meta`` is checked when made (:func:`dump_shards`); each shard when it is read, as
    :func:`load_dump` checks it."""

    path: Path
    meta: dict
    on_shard: Callable[[int, int], None] | None = None  # (shards done, shards) after each; progress

    @property
    def meta_file(self) -> Path:
        """The dump's ``metadata.json``."""
        return self.path / "metadata.json"

    def ann_file(self) -> str:
        """The dump's annotation file, checked against its recorded hash (:func:`annotation_file`)."""
        return annotation_file(self.meta, self.meta_file)

    def __len__(self) -> int:
        return int(self.meta["num_shards"])

    def __iter__(self) -> Iterator[Dump]:
        """Each shard as a :class:`Dump` of its images (same ``path`` and ``meta``), in shard order.

        Raises:
            DumpError: naming the shard file that is wrong, when it is reached.
        """
        _, written, owner = _dump_header(self.path)
        for shard in range(len(self)):
            tables = {kind: _checked_shard(self.path, self.meta, kind, shard, written, owner)
                      for kind in ("images", "candidates", "detections")}
            selected, population = split_population(tables["candidates"])
            del tables["candidates"]
            yield Dump(self.path, self.meta, selected, tables["detections"], tables["images"], population)
            if self.on_shard is not None:
                self.on_shard(shard + 1, len(self))


def dump_shards(path: str | Path) -> DumpShards:
    """A dump directory to read shard by shard (:class:`DumpShards`), its metadata checked now.

    Raises:
        DumpError: naming ``metadata.json`` and the field that is wrong.
    """
    path = Path(path)
    meta, _, _ = _dump_header(path)
    return DumpShards(path, meta)


def shards_of(dump: Dump | DumpShards) -> Iterator[Dump]:
    """The parts to iterate a dump by: a :class:`DumpShards`' shards, or a loaded :class:`Dump`
    as its one part."""
    if isinstance(dump, DumpShards):
        yield from dump
    else:
        yield dump

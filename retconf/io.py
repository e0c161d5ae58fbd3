"""Files: atomic writes (a temporary sibling file renamed into place, so a kill at any moment never
leaves a file that looks complete but is not) and content hashes."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json_and_markdown(prefix: str | os.PathLike, data: dict, markdown: str) -> None:
    """Write ``{prefix}.json`` (``data``) and ``{prefix}.md`` (``markdown``), each atomically."""
    atomic_write_text(f"{prefix}.json", json.dumps(data, indent=1))
    atomic_write_text(f"{prefix}.md", markdown)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks: checkpoints, dump shards, manifests."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

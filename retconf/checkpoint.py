"""Safe checkpoint loading for mmengine checkpoints under torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, and an mmengine *training* checkpoint
holds more than tensors: numpy arrays, dtypes and scalars in ``message_hub`` and ``meta``, and
``mmengine.logging.HistoryBuffer`` objects, whose statistics methods are pickled as
``getattr(buffer, 'mean')``. Both ``resume`` and mmdet's ``init_detector`` then
fail. Instead of switching weights-only loading off (which would let a checkpoint from anywhere
run arbitrary code), :func:`mmengine_safe_globals` allow-lists exactly those types, and only for
the duration of a ``with`` block.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def allowed_globals() -> list[Any]:
    """The classes and functions an mmengine training checkpoint may reference.

    ``builtins.getattr`` is needed for HistoryBuffer's bound statistics methods. It stays safe
    here because torch's weights-only unpickler only *calls* (REDUCE) allow-listed callables: an
    attribute fetched with getattr can be stored, never executed.
    """
    import builtins

    import numpy as np
    from mmengine.logging import HistoryBuffer

    core = getattr(np, "_core", None) or np.core
    dtype_classes = {type(np.dtype(t)) for t in np.sctypeDict.values()}
    return [
        np.ndarray,
        np.dtype,
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        HistoryBuffer,
        builtins.getattr,
        *sorted(dtype_classes, key=lambda c: c.__name__),
    ]


@contextlib.contextmanager
def mmengine_safe_globals() -> Iterator[None]:
    """Allow-list :func:`allowed_globals` for torch's weights-only unpickler inside the block."""
    import torch

    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is None:  # torch < 2.5 has no weights-only default to work around
        yield
        return
    with safe(allowed_globals()):
        yield


def explain_unsafe(path: str | Path) -> str:
    """Name the globals a checkpoint needs beyond the allow-list (for an error message)."""
    import torch

    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if finder is None:
        return ""
    try:
        names = finder(str(path))
    except Exception:  # a truncated or non-zip file: the load error itself says more
        return ""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in allowed_globals()}
    extra = sorted(n for n in names if n not in allowed)
    return ", ".join(extra)


def load_checkpoint_file(path: str | Path, map_location: str = "cpu") -> dict:
    """Load a checkpoint with weights-only unpickling plus the mmengine allow-list.

    Raises:
        CheckpointError: naming the file and, where the file needs more than the allow-list,
            the globals it asks for (it is then refused rather than executed).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with mmengine_safe_globals():
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        extra = explain_unsafe(path)
        if extra:
            raise CheckpointError(
                f"checkpoint {path} refers to code outside the safe allow-list ({extra}); "
                "refusing to unpickle it. Load it only if you trust its source, e.g. "
                "torch.load(path, weights_only=False), and re-save its state_dict.") from e
        raise CheckpointError(f"checkpoint {path} could not be read: {e}") from e


PARTIAL_HINT = ("pass --allow-partial-checkpoint (config key allow_partial_checkpoint=True) "
                "to load only what fits")


def checkpoint_mismatch(state: dict, target: dict) -> tuple[list[str], list[str], list[str]]:
    """Compare a checkpoint's state_dict with a model's.

    Returns:
        (shape mismatches as "key (ckpt shape) vs model (model shape)", keys the model needs that
        the checkpoint lacks, keys of the checkpoint the model does not have). BatchNorm's
        ``num_batches_tracked`` counters are not required (torch fills them in).
    """
    mismatched = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in target.items()
                  if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    return mismatched, missing, unexpected


def check_checkpoint_fits(path: str | Path, model: Any, ckpt: dict | None = None,
                          allow_partial: bool = False) -> None:
    """Refuse a checkpoint that does not fit the model exactly.

    Raises :class:`CheckpointError` when a tensor's shape differs from the model's, when the
    checkpoint lacks entries the model needs (e.g. a plain RetinaNet checkpoint for a
    RetinaNet-Conf model: its quality branch would stay randomly initialised) or holds entries
    the model does not have (the reverse: the branch would be dropped). mmengine would load
    what fits and only log a warning. ``allow_partial=True`` (``--allow-partial-checkpoint``)
    accepts all three, for deliberate partial loads; backbone-only initialisation through
    ``init_cfg=dict(type='Pretrained', ...)`` does not come here. ``ckpt`` is the already
    loaded file, when the caller has it.
    """
    if ckpt is None:
        ckpt = load_checkpoint_file(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"checkpoint {path} holds no state_dict")
    if allow_partial:
        return
    state = {k.removeprefix("module."): v for k, v in state.items()}
    target = getattr(model, "module", model).state_dict()
    mismatched, missing, unexpected = checkpoint_mismatch(state, target)
    if mismatched:
        raise CheckpointError(f"checkpoint {path} belongs to another model: {len(mismatched)} shape "
                              f"mismatches, e.g. {'; '.join(mismatched[:3])}; {PARTIAL_HINT}")
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} of the model's {len(target)} entries "
                        f"(e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"has {len(unexpected)} entries the model does not have "
                        f"(e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {' and '.join(problems)}; "
                              f"{PARTIAL_HINT}")


def fitting_state(state: dict, model: Any) -> dict:
    """The entries of ``state`` that the model has with the same shape (a partial load)."""
    target = getattr(model, "module", model).state_dict()
    return {k: v for k, v in state.items()
            if k in target and tuple(getattr(v, "shape", ())) == tuple(target[k].shape)}

"""Hooks that leave machine-readable results next to the checkpoints."""
from __future__ import annotations

import json
import math
import os.path as osp
from typing import Any

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..errors import TrainingDiverged  # re-exported for the hook's callers
from ..io import atomic_write_text


def _plain(metrics: dict) -> dict:
    return {k: (float(v) if isinstance(v, (int, float)) or hasattr(v, "item") else v)
            for k, v in metrics.items()}


@HOOKS.register_module()
class MetricsFileHook(Hook):
    """Write ``{work_dir}/metrics.json`` (after val) and ``test_metrics.json`` (after test).

    Each file holds ``{"epoch", "iter", "metrics": {...}}`` and is replaced atomically.
    ``metrics`` is empty when the evaluator had nothing to score (mmdet's CocoMetric returns
    no numbers when no detection passed ``score_thr``, e.g. early in training).
    """

    priority = "LOW"

    def _write(self, runner: Any, name: str, metrics: dict | None) -> None:
        if runner.rank != 0:
            return
        record = {"epoch": runner.epoch, "iter": runner.iter, "metrics": _plain(metrics or {})}
        atomic_write_text(osp.join(runner.work_dir, name), json.dumps(record, indent=1, sort_keys=True))

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._write(runner, "metrics.json", metrics)

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._write(runner, "test_metrics.json", metrics)


def first_bad_loss(log_vars: dict) -> tuple[str, float] | None:
    """The first ``loss*`` entry of ``log_vars`` that is not finite, as (name, value)."""
    for name, value in log_vars.items():
        if "loss" not in name:
            continue
        v = float(value.item() if hasattr(value, "item") else value)
        if not math.isfinite(v):
            return name, v
    return None


@HOOKS.register_module()
class LossGuardHook(Hook):
    """Stop training with a clear message as soon as a loss term is NaN or infinite.

    Raises :class:`TrainingDiverged` naming the iteration, epoch and loss term; the checkpoint
    of that iteration is not written, so ``--resume`` restarts from the last good one.
    """

    priority = "VERY_HIGH"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        bad = first_bad_loss(outputs or {})
        if bad is not None:
            name, value = bad
            raise TrainingDiverged(
                f"training stopped: {name} is {value} at iteration {runner.iter + 1} "
                f"(epoch {runner.epoch + 1}); lower the learning rate or check the data, then "
                f"resume from the last checkpoint in {runner.work_dir}")

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


class FinalValidationHook(Hook):
    """Validate once more after training when this run trained no epoch: resumed from the last
    epoch's checkpoint (written before the final validation, e.g. a kill during it), mmengine's
    loop has nothing to train and validates only after an epoch it trains, so the run would end
    without ``metrics.json``. Every rank decides alike (from its own loop state, not from a
    file rank 0 may still be writing), so distributed validation runs on all of them or none.
    ``retconf.apis.train`` registers it."""

    priority = "LOW"

    def __init__(self) -> None:
        self._start_epoch: int | None = None

    def before_train(self, runner: Any) -> None:
        self._start_epoch = runner.epoch  # after any resume

    def after_train(self, runner: Any) -> None:
        loop = runner.train_loop
        if (self._start_epoch is not None and runner.epoch == self._start_epoch
                and runner.epoch >= getattr(loop, "max_epochs", float("inf")) and runner.val_loop is not None):
            runner.val_loop.run()

"""Hooks that leave machine-readable results next to the checkpoints."""
from __future__ import annotations

import json
import os.path as osp
from typing import Any, Optional

from mmengine.hooks import Hook
from mmdet.registry import HOOKS

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

    def _write(self, runner: Any, name: str, metrics: Optional[dict]) -> None:
        if runner.rank != 0:
            return
        record = {"epoch": runner.epoch, "iter": runner.iter, "metrics": _plain(metrics or {})}
        atomic_write_text(osp.join(runner.work_dir, name), json.dumps(record, indent=1, sort_keys=True))

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        self._write(runner, "metrics.json", metrics)

    def after_test_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        self._write(runner, "test_metrics.json", metrics)

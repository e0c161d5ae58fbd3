"""A Runner whose checkpoint loading works under torch's weights-only default."""
from __future__ import annotations

import os
import os.path as osp
from typing import Any

from mmdet.registry import RUNNERS
from mmengine.runner import Runner

from ..checkpoint import check_checkpoint_fits, mmengine_safe_globals


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine ``Runner`` that loads and resumes checkpoints under a scoped allow-list.

    mmengine 0.10 calls ``torch.load`` with torch's default ``weights_only=True`` (torch >= 2.6),
    which rejects the numpy objects and ``HistoryBuffer`` stored by its own training
    checkpoints. Only these two entry points widen the allow-list, and only while they run.
    Checkpoints are saved atomically (temporary file, then rename). Before loading, the
    checkpoint is checked against the model (shapes, missing and unexpected entries) so a
    checkpoint of another model fails with one clear error instead of silently loading half;
    the config key ``allow_partial_checkpoint = True`` (``--allow-partial-checkpoint``) allows a
    deliberate partial load. Use it with ``runner_type = 'SafeRunner'`` in a config;
    ``retconf train/test`` always do.
    """

    def _check_fits(self, filename: str) -> None:
        if osp.isfile(filename):
            allow = bool((getattr(self, "cfg", None) or {}).get("allow_partial_checkpoint", False))
            check_checkpoint_fits(filename, self.model, allow_partial=allow)

    def load_checkpoint(self, filename: str, *args: Any, **kwargs: Any) -> Any:
        self._check_fits(filename)
        with mmengine_safe_globals():
            return super().load_checkpoint(filename, *args, **kwargs)

    def resume(self, filename: str, *args: Any, **kwargs: Any) -> None:
        self._check_fits(filename)
        with mmengine_safe_globals():
            return super().resume(filename, *args, **kwargs)

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        """Save to a temporary name and rename: a kill mid-save never leaves a checkpoint
        that looks complete but is not (mmengine writes in place)."""
        if not osp.isdir(out_dir):
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        tmp = f".{filename}.tmp"
        super().save_checkpoint(out_dir, tmp, *args, **kwargs)
        if osp.isfile(osp.join(out_dir, tmp)):  # only the main process writes checkpoints
            os.replace(osp.join(out_dir, tmp), osp.join(out_dir, filename))

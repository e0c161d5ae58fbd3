"""A Runner whose checkpoint loading works under torch's weights-only default."""
from __future__ import annotations

from typing import Any

from mmengine.runner import Runner
from mmdet.registry import RUNNERS

from ..checkpoint import mmengine_safe_globals


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine ``Runner`` that loads and resumes checkpoints under a scoped allow-list.

    mmengine 0.10 calls ``torch.load`` with torch's default ``weights_only=True`` (torch >= 2.6),
    which rejects the numpy objects and ``HistoryBuffer`` stored by its own training
    checkpoints. Only these two entry points widen the allow-list, and only while they run.
    Use it with ``runner_type = 'SafeRunner'`` in a config; ``retconf train/test`` always do.
    """

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        with mmengine_safe_globals():
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args: Any, **kwargs: Any) -> None:
        with mmengine_safe_globals():
            return super().resume(*args, **kwargs)

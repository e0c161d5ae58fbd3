"""CPU training speed-ups: bfloat16 autocast and channels-last memory format.

mmengine's ``AmpOptimWrapper`` asserts a CUDA (or NPU/MLU/MUSA) device, so ``retconf train --amp``
used to die on CPU. :class:`CPUAutocastOptimWrapper` is the CPU counterpart: the forward pass
and the losses run under ``torch.autocast('cpu', dtype=bfloat16)``; parameters, gradients and
the optimizer state stay float32, and bfloat16 needs no loss scaling (it has float32's
exponent range). The tiny digits recipe trains with it by default (``benchmarks/train_profile.py``
measures 1.5x per step on one core of an AVX512-BF16 CPU). Inference (validation, test, dumps)
is not autocast: the optim wrapper only wraps the training step.

:class:`ChannelsLastHook` puts the model's 4-d weights in channels-last (NHWC) order before
training, which oneDNN convolutions on CPU run faster; the saved checkpoints hold the same
values in the usual layout once loaded.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmdet.registry import HOOKS, OPTIM_WRAPPERS

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward/loss context is ``torch.autocast('cpu', dtype)``.

    Args:
        dtype: ``'bfloat16'`` (default) or ``'float16'``.
        enabled: False gives plain float32 training (for A/B runs from the same config).
        Other arguments as :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, *args: Any, dtype: str = "bfloat16", enabled: bool = True, **kwargs: Any) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"CPUAutocastOptimWrapper: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        super().__init__(*args, **kwargs)
        self.dtype = _DTYPES[dtype]
        self.enabled = enabled

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast("cpu", dtype=self.dtype, enabled=self.enabled):
            yield


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model to channels-last memory format before training (CPU and CUDA)."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        runner.model.to(memory_format=torch.channels_last)

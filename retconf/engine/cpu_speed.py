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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from mmdet.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper

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
        fp32_modules: names of submodules (e.g. ``'bbox_head'``) that run in float32 inside the
            autocast region (:func:`keep_fp32`).
        Other arguments as :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, *args: Any, dtype: str = "bfloat16", enabled: bool = True,
                 fp32_modules: Sequence[str] = (), **kwargs: Any) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"CPUAutocastOptimWrapper: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        super().__init__(*args, **kwargs)
        self.dtype = _DTYPES[dtype]
        self.enabled = enabled
        self.fp32_modules = tuple(fp32_modules)
        self._hooked: set[int] = set()

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        if self.enabled and self.fp32_modules and id(model) not in self._hooked:
            inner = getattr(model, "module", model)  # DDP wraps the detector
            for name in self.fp32_modules:
                keep_fp32(inner.get_submodule(name))
            self._hooked.add(id(model))
        with super().optim_context(model), torch.autocast("cpu", dtype=self.dtype, enabled=self.enabled):
            yield


def _to_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_float(v) for k, v in x.items()}
    return x


def keep_fp32(module: torch.nn.Module) -> list:
    """Run ``module``'s forward in float32 under an enclosing autocast: its floating inputs are
    cast up and autocast is off inside it (e.g. a detection head, so that its outputs and the
    losses computed from them keep float32 precision). Returns the hook handles."""

    def pre(mod: torch.nn.Module, args: tuple, kwargs: dict) -> tuple:
        ctx = torch.autocast("cpu", enabled=False)
        ctx.__enter__()
        mod._retconf_fp32_ctx = ctx
        return _to_float(args), _to_float(kwargs)

    def post(mod: torch.nn.Module, args: tuple, output: Any) -> Any:
        mod._retconf_fp32_ctx.__exit__(None, None, None)
        return output

    return [module.register_forward_pre_hook(pre, with_kwargs=True), module.register_forward_hook(post)]


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model to channels-last memory format before training (CPU and CUDA)."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        runner.model.to(memory_format=torch.channels_last)

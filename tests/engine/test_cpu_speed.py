"""CPU speed-ups (retconf/engine/cpu_speed.py): bfloat16 autocast wrapper, float32 islands,
channels-last."""
from __future__ import annotations

import pytest
import torch

from retconf.engine.cpu_speed import ChannelsLastHook, CPUAutocastOptimWrapper, keep_fp32


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.body(x)
        return feat, self.head(feat)


def _wrapper(net: torch.nn.Module, **kw) -> CPUAutocastOptimWrapper:
    return CPUAutocastOptimWrapper(optimizer=torch.optim.SGD(net.parameters(), lr=0.1), **kw)


def test_autocast_runs_convolutions_in_bf16_and_keeps_fp32_weights_and_grads() -> None:
    net = _Net()
    wrapper = _wrapper(net)
    with wrapper.optim_context(net):
        feat, out = net(torch.randn(2, 3, 8, 8))
    assert feat.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in net.parameters())


def test_disabled_wrapper_is_plain_fp32() -> None:
    net = _Net()
    with _wrapper(net, enabled=False).optim_context(net):
        feat, out = net(torch.randn(2, 3, 8, 8))
    assert feat.dtype == out.dtype == torch.float32


def test_fp32_modules_run_in_float32_inside_the_autocast_region() -> None:
    net = _Net()
    x = torch.randn(2, 3, 8, 8)
    with _wrapper(net, fp32_modules=("head",)).optim_context(net):
        feat, out = net(x)
        after = net.body(x)  # autocast is back on after the float32 module
    assert feat.dtype == torch.bfloat16 and out.dtype == torch.float32 and after.dtype == torch.bfloat16
    # the head computed exactly what float32 computes from the (bf16) features it was given
    assert torch.equal(out, net.head(feat.float()))


def test_keep_fp32_hooks_can_be_removed() -> None:
    net = _Net()
    handles = keep_fp32(net.head)
    for h in handles:
        h.remove()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.randn(1, 3, 4, 4))[1].dtype == torch.bfloat16


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        _wrapper(_Net(), dtype="int8")


def test_channels_last_hook_converts_the_model() -> None:
    class Runner:
        model = _Net()

    ChannelsLastHook().before_train(Runner)
    assert Runner.model.body.weight.is_contiguous(memory_format=torch.channels_last)

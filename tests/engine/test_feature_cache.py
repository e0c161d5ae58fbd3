"""The frozen backbone's feature cache (retconf/engine/feature_cache.py): what it memoises, when it
turns itself off, and that a training with it has the same bits as one without."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from retconf.engine.feature_cache import (
    FeatureMemo,
    FrozenFeatureCacheHook,
    frozen_problem,
    memo_samples,
    random_transforms,
    same_tensors,
)
from tests.conftest import TINY_CONF, fast_train_options


class _Backbone(torch.nn.Module):
    """Two levels, like a ResNet's outputs: (N, 4, H, W) and (N, 8, H/2, W/2)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.b = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        f1 = self.bn(self.a(x)).relu()
        return f1, self.b(f1)


def _frozen() -> _Backbone:
    net = _Backbone().to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train()
    net.bn.eval()
    return net


def test_memo_returns_the_live_features_bit_for_bit_with_their_layout() -> None:
    net = _frozen()
    memo = FeatureMemo(net.forward, max_bytes=2**30)
    x = torch.randn(4, 3, 8, 8)
    live, cached = memo(x)
    assert not cached and memo.misses == 4 and net.calls == 1
    again, cached = memo(x[[2, 0, 3, 1]])  # the same images in another batch
    assert cached and memo.hits == 4 and net.calls == 1
    assert same_tensors(again, tuple(net(x[[2, 0, 3, 1]]))) is None
    assert again[0].is_contiguous(memory_format=torch.channels_last)


def test_memo_computes_a_batch_with_any_new_sample_live_as_a_whole() -> None:
    net = _frozen()
    memo = FeatureMemo(net.forward, max_bytes=2**30)
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    memo(x)
    both = torch.cat([x[:1], y[:1]])
    live, cached = memo(both)
    assert not cached and net.calls == 2 and memo.hits == 0 and len(memo.store) == 3
    assert same_tensors(live, tuple(net(both))) is None
    _, cached = memo(torch.cat([y[:1], x[1:]]))
    assert cached and net.calls == 3


def test_memo_keys_include_the_autocast_state_and_respect_the_cap() -> None:
    net = _frozen()
    x = torch.randn(2, 3, 8, 8)
    memo = FeatureMemo(net.forward, max_bytes=2**30)
    memo(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, cached = memo(x)
    assert not cached and feats[0].dtype == torch.bfloat16
    one_sample = sum(t[0].numel() * t.element_size() for t in net(x))
    capped = FeatureMemo(net.forward, max_bytes=one_sample)
    capped(x)
    assert len(capped.store) == 1 and capped.nbytes <= one_sample


def test_frozen_problem_names_a_training_weight_or_batch_norm() -> None:
    assert frozen_problem(_frozen()) is None
    net = _frozen()
    net.b.weight.requires_grad_(True)
    assert "b.weight" in frozen_problem(net)
    net = _frozen()
    net.bn.train()
    assert "batch norm bn" in frozen_problem(net)


def _runner(backbone: torch.nn.Module) -> SimpleNamespace:
    return SimpleNamespace(model=SimpleNamespace(backbone=backbone))


def test_hook_turns_itself_off_for_a_backbone_that_trains(capsys: pytest.CaptureFixture) -> None:
    net = _Backbone()
    hook = FrozenFeatureCacheHook()
    hook.before_train(_runner(net))
    assert not hook.active and "forward" not in net.__dict__


def test_hook_serves_cached_features_after_checking_them_and_restores_the_backbone() -> None:
    net = _frozen()
    hook = FrozenFeatureCacheHook()
    hook.before_train(_runner(net))
    x = torch.randn(3, 3, 8, 8)
    first = net(x)
    second = net(x)  # all cached: checked against one live pass
    assert hook.active and net.calls == 2
    third = net(x)
    assert net.calls == 2 and same_tensors(third, first) is None and same_tensors(second, first) is None
    net(x[:2])  # cached images in a batch of a new shape: checked once more
    net(x[:2])
    assert net.calls == 3 and len(hook._verified) == 2
    net.eval()
    net(x)  # inference is never served from the memo
    assert net.calls == 4
    hook.after_train_epoch(_runner(net))
    hook.after_train(_runner(net))
    assert "forward" not in net.__dict__ and not hook.memo.store


def test_hook_turns_off_when_cached_features_differ_from_live_ones() -> None:
    class Drifting(_Backbone):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f1, f2 = super().forward(x)
            return f1 + self.calls, f2

    net = Drifting()
    for p in net.parameters():
        p.requires_grad_(False)
    net.bn.eval()
    hook = FrozenFeatureCacheHook()
    hook.before_train(_runner(net))
    x = torch.randn(2, 3, 8, 8)
    net(x)
    out = net(x)
    assert not hook.active and not hook.memo.store
    assert same_tensors(out, tuple(Drifting.forward(net, x))) is not None  # a live pass each call
    assert net(x)[0].sum() != out[0].sum()


def test_hook_refuses_to_go_on_when_the_backbone_weights_change() -> None:
    net = _frozen()
    hook = FrozenFeatureCacheHook()
    hook.before_train(_runner(net))
    with torch.no_grad():
        net.a.weight.add_(1.0)
    with pytest.raises(RuntimeError, match="weights changed"):
        hook.after_train_epoch(_runner(net))


def test_a_training_with_the_cache_has_the_same_bits_as_one_without(small_digits: Path, tmp_path: Path) -> None:
    """Three epochs of the tiny RetinaNet-Conf with its (randomly initialised) backbone frozen,
    under the recipe's bfloat16 autocast and channels-last: the final weights are identical."""
    from retconf.apis import train
    from retconf.checkpoint import load_checkpoint_file

    opts = {**fast_train_options(max_epochs=3), "model.backbone.frozen_stages": 4}
    states = {}
    for cache in (False, True):
        work = tmp_path / f"cache{cache}"
        train(str(TINY_CONF), str(work), opts, str(small_digits), feature_cache=cache)
        states[cache] = load_checkpoint_file(work / "epoch_3.pth")["state_dict"]
        log = "\n".join(p.read_text() for p in work.rglob("*.log"))
        if cache:
            assert "equals the live backbone pass bit for bit" in log and "feature cache off" not in log
            assert "16 images" in log and "32 samples served from it" in log
            assert "sample cache on" in log and "sample cache: 16 samples" in log
    assert states[True].keys() == states[False].keys()
    different = [k for k in states[True] if not torch.equal(states[True][k], states[False][k])]
    assert not different, different[:5]


def test_sample_memo_returns_copies_of_the_first_result() -> None:
    calls = []

    def prepare(idx: int) -> dict:
        calls.append(idx)
        return {"inputs": torch.full((2,), float(idx)), "meta": [idx]}

    prepared, store = memo_samples(prepare)
    first = prepared(3)
    first["inputs"].add_(1)
    first["meta"].append("changed downstream")
    again = prepared(3)
    assert calls == [3] and again["meta"] == [3] and torch.equal(again["inputs"], torch.full((2,), 3.0))
    assert prepared(5)["meta"] == [5] and sorted(store) == [3, 5]
    capped, kept = memo_samples(prepare, max_bytes=8)  # room for one sample of two float32 values
    capped(1), capped(2), capped(2)
    assert sorted(kept) == [1] and calls[-2:] == [2, 2]


def test_random_transforms_names_what_may_draw_at_random() -> None:
    class LoadImageFromFile: ...
    class RandomFlip: ...
    dataset = SimpleNamespace(pipeline=SimpleNamespace(transforms=[LoadImageFromFile(), RandomFlip()]))
    assert random_transforms(dataset) == ["RandomFlip"]

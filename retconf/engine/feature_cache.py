"""Memoised features of a frozen backbone: cheaper trainings with the same bits.

With the tiny recipe's frozen backbone (``frozen_stages=4``, ``norm_eval=True``) and no
augmentation, the backbone maps each training image to the same features in every epoch: 7 of
a training's 8 backbone passes over the training set recompute what the first one computed.
:class:`FrozenFeatureCacheHook` keeps each image's features (keyed by a hash of the image tensor
the backbone receives, so any pipeline that changes the image simply misses) and hands them
back in later epochs. Only neck and head run again.

It changes how a training runs, not what it computes, and it checks that at run time:

- it turns itself off (one log line saying why) unless every backbone parameter is frozen, every
  batch-norm layer of the backbone stays in eval mode while training, and the inputs are on the CPU;
- a batch is served from the memo only when all its images are there (otherwise the backbone
  runs on the whole batch, as without the cache);
- on the first such batch of each batch shape it also runs the backbone and compares: the
  cached features must equal the live ones bit for bit, in the same dtype, shape and memory
  layout. Otherwise it logs the mismatch and stays off for the rest of the training, so the
  training's bits are those of a training without it;
- after every epoch it checks that the backbone's weights have not changed.

Measured on a 2-core AMD EPYC (benchmarks/seed_cost.py, docs/reproducibility.md): a
sample's backbone features do not depend on the other samples of its batch, nor on the batch
size under the default oneDNN path, AVX512_CORE and AVX2, so the cached training reproduces the uncached checkpoint
bit for bit. Memory: every cached image holds its four feature maps (about 0.28 MB per 192 px
image in bfloat16) and its sample (0.11 MB); ``max_gb`` caps each (images beyond the cap
are computed live).
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.nn.modules.batchnorm import _BatchNorm

Features = tuple[torch.Tensor, ...]


def sample_key(x: torch.Tensor, context: tuple) -> bytes:
    """Hash of one sample's tensor (C, H, W) with its dtype, shape and ``context`` (SHA-1: 5 ms
    for a batch of 16 192 px images on one core, against about 100 ms for the tiny backbone)."""
    h = hashlib.sha1(repr((str(x.dtype), tuple(x.shape), context)).encode(), usedforsecurity=False)
    h.update(x.detach().cpu().contiguous().flatten().view(torch.uint8).numpy())
    return h.digest()


def frozen_problem(backbone: torch.nn.Module) -> str | None:
    """Why ``backbone``'s features may change during training (None when they cannot):
    a parameter that trains, or a batch-norm layer in training mode (its statistics update)."""
    trainable = [name for name, p in backbone.named_parameters() if p.requires_grad]
    if trainable:
        return f"{len(trainable)} backbone parameters train (e.g. {trainable[0]})"
    if backbone.training:
        bn = [name for name, m in backbone.named_modules() if isinstance(m, _BatchNorm) and m.training]
        if bn:
            return f"backbone batch norm {bn[0]} updates its statistics (norm_eval=False)"
    return None


def weights_digest(module: torch.nn.Module) -> str:
    """Hash of ``module``'s parameters and buffers."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def same_tensors(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> str | None:
    """None when ``a`` and ``b`` hold the same tensors bit for bit with the same layout, else
    what differs."""
    if len(a) != len(b):
        return f"{len(a)} against {len(b)} feature maps"
    for i, (x, y) in enumerate(zip(a, b)):
        if x.dtype != y.dtype or x.shape != y.shape or x.stride() != y.stride():
            return f"level {i}: {x.dtype} {tuple(x.shape)} {x.stride()} against {y.dtype} {tuple(y.shape)} {y.stride()}"
        if not torch.equal(x, y):
            return f"level {i}: values differ (max |diff| {float((x.float() - y.float()).abs().max()):.3g})"
    return None


# Transforms that map an image and its annotations to the same result on every call (no random
# draw): a training pipeline made only of these gives each index the same sample in every epoch.
DETERMINISTIC_TRANSFORMS = frozenset({"LoadImageFromFile", "LoadAnnotations", "Resize", "Pad", "PackDetInputs",
                                      "FilterAnnotations"})


def random_transforms(dataset: Any) -> list[str]:
    """Names of the transforms of ``dataset``'s pipeline not known to be deterministic."""
    transforms = getattr(getattr(dataset, "pipeline", None), "transforms", None)
    if transforms is None:
        return ["(a pipeline without a transform list)"]
    return [type(t).__name__ for t in transforms if type(t).__name__ not in DETERMINISTIC_TRANSFORMS]


def _tensor_bytes(data: Any) -> int:
    """Bytes of the tensors in a sample (its dict values, one level deep)."""
    values = data.values() if isinstance(data, dict) else [data]
    return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))


def memo_samples(prepare: Callable[[int], Any], max_bytes: int = 2**62) -> tuple[Callable[[int], Any], dict[int, Any]]:
    """``prepare`` (a dataset's ``prepare_data(idx)``) memoised by index, up to ``max_bytes`` of
    sample tensors (later samples are prepared every time); each call returns a deep copy, so
    that nothing downstream can change the kept sample. Returns the memoised function and its
    store."""
    store: dict[int, Any] = {}
    used = 0

    def prepared(idx: int) -> Any:
        nonlocal used
        if idx not in store:
            data = prepare(idx)
            if data is None:  # mmengine refetches another index: nothing to keep
                return None
            size = _tensor_bytes(data)
            if used + size > max_bytes:
                return data
            store[idx] = data
            used += size
        return copy.deepcopy(store[idx])

    return prepared, store


class FeatureMemo:
    """Per-sample memo of a backbone's output for a batch (N, C, H, W) -> tuple of (N, Ci, Hi, Wi).

    ``compute`` is the backbone's own forward. Cached samples are stacked and given the memory
    layout of the live output.
    """

    def __init__(self, compute: Any, max_bytes: int) -> None:
        self.compute = compute
        self.max_bytes = max_bytes
        self.store: dict[bytes, Features] = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.channels_last: tuple[bool, ...] | None = None

    def _context(self) -> tuple:
        return (torch.is_autocast_enabled("cpu"), str(torch.get_autocast_dtype("cpu")))

    def _assemble(self, per_sample: list[Features]) -> Features:
        out = []
        for level in range(len(per_sample[0])):
            t = torch.stack([s[level] for s in per_sample])
            if self.channels_last and self.channels_last[level]:
                t = t.contiguous(memory_format=torch.channels_last)
            out.append(t)
        return tuple(out)

    def __call__(self, x: torch.Tensor) -> tuple[Features, bool]:
        """Features of batch ``x`` and whether they came from the memo. A batch is served from
        the memo only when every sample of it is there; otherwise it is computed live as a
        whole (a sub-batch of the missing samples could take another kernel than the whole
        batch: measured on a small float32 convolution) and its new samples are kept."""
        context = self._context()
        keys = [sample_key(x[i], context) for i in range(x.shape[0])]
        if all(k in self.store for k in keys):
            self.hits += len(keys)
            return self._assemble([self.store[k] for k in keys]), True
        live = tuple(self.compute(x))
        self._remember(keys, live)
        self.misses += len(keys)
        return live, False

    def _remember(self, keys: list[bytes], batch: Features) -> None:
        """Keep each sample of ``batch`` under its key (those already kept are skipped)."""
        if self.channels_last is None:
            self.channels_last = tuple(t.dim() == 4 and not t.is_contiguous() and
                                       t.is_contiguous(memory_format=torch.channels_last) for t in batch)
        for j, k in enumerate(keys):
            if k in self.store:
                continue
            sample = tuple(t[j].detach().clone() for t in batch)
            size = sum(t.numel() * t.element_size() for t in sample)
            if self.nbytes + size > self.max_bytes:
                return
            self.store[k] = sample
            self.nbytes += size


@HOOKS.register_module()
class FrozenFeatureCacheHook(Hook):
    """Memoise a frozen backbone's training features (see the module docstring).

    Args:
        max_gb: memory cap in GiB of the feature memo and, apart, of the sample memo (images beyond
            it are computed live).
        verify: compare the first cached batch of each shape with a live backbone pass (and
            turn the memo off on any difference).
        data: also keep each training sample as the data pipeline made it (image decoded and
            resized, annotations packed) when every transform of the pipeline is deterministic
            (:data:`DETERMINISTIC_TRANSFORMS`): later epochs skip decoding and resizing.
    """

    priority = "LOW"

    def __init__(self, max_gb: float = 4.0, verify: bool = True, data: bool = True) -> None:
        self.max_bytes = int(max_gb * 2**30)
        self.verify = verify
        self.data = data
        self._dataset: Any = None
        self._samples: dict[int, Any] = {}
        self.memo: FeatureMemo | None = None
        self.active = False
        self._digest: str | None = None
        self._backbone: Any = None
        self._verified: set[tuple] = set()

    def _off(self, why: str) -> None:
        if self.active:
            print_log(f"feature cache off: {why}; the backbone runs on every batch", logger="current")
        self.active = False

    def _memo_data(self, runner: Any) -> None:
        loader = getattr(getattr(runner, "train_loop", None), "dataloader", None)
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not hasattr(dataset, "prepare_data"):
            print_log("sample cache off: the training set has no prepare_data", logger="current")
            return
        if getattr(loader, "num_workers", 0):
            print_log("sample cache off: samples are loaded in worker processes (num_workers > 0)",
                      logger="current")
            return
        random = random_transforms(dataset)
        if random:
            print_log(f"sample cache off: the training pipeline has transforms that may draw at random "
                      f"({', '.join(random)})", logger="current")
            return
        dataset.prepare_data, self._samples = memo_samples(dataset.prepare_data, self.max_bytes)
        self._dataset = dataset
        print_log("sample cache on: each training sample is kept as the pipeline made it", logger="current")

    def before_train(self, runner: Any) -> None:
        if self.data:
            self._memo_data(runner)
        model = getattr(runner.model, "module", runner.model)
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            print_log("feature cache off: the model has no backbone", logger="current")
            return
        why = frozen_problem(backbone)
        if why is not None:
            print_log(f"feature cache off: {why}", logger="current")
            return
        self._backbone = backbone
        self._digest = weights_digest(backbone)
        original = backbone.forward
        self.memo = FeatureMemo(original, self.max_bytes)
        self.active = True
        hook = self

        def forward(x: torch.Tensor) -> Any:
            if not (hook.active and backbone.training and x.device.type == "cpu"):
                return original(x)
            if not hook._verified:
                why = frozen_problem(backbone)
                if why is not None:
                    hook._off(why)
                    return original(x)
            assert hook.memo is not None
            feats, cached = hook.memo(x)
            shape = (tuple(x.shape), str(x.dtype), torch.is_autocast_enabled("cpu"))
            if cached and hook.verify and shape not in hook._verified:
                hook._verified.add(shape)
                diff = same_tensors(feats, tuple(original(x)))
                if diff is not None:
                    hook._off(f"cached features differ from the live ones ({diff})")
                    hook.memo.store.clear()
                    return original(x)
                print_log(f"feature cache: the first cached batch of shape {tuple(x.shape)} equals the live "
                          "backbone pass bit for bit", logger="current")
            return feats

        backbone.forward = forward
        print_log("feature cache on: the frozen backbone's features of each training image are kept "
                  f"after their first pass (cap {self.max_bytes / 2**30:.1f} GiB)", logger="current")

    def after_train_epoch(self, runner: Any) -> None:
        if self._dataset is not None:
            print_log(f"sample cache: {len(self._samples)} samples", logger="current")
        if self.active and self._backbone is not None:
            if weights_digest(self._backbone) != self._digest:
                raise RuntimeError("FrozenFeatureCacheHook: the backbone's weights changed during training, "
                                   "so its cached features are stale; train without the feature cache")
            memo = self.memo
            assert memo is not None
            print_log(f"feature cache: {len(memo.store)} images, {memo.nbytes / 2**20:.0f} MiB; "
                      f"{memo.hits} samples served from it, {memo.misses} computed", logger="current")

    def after_train(self, runner: Any) -> None:
        if self._dataset is not None:
            self._dataset.__dict__.pop("prepare_data", None)
            self._samples.clear()
        if self._backbone is not None:
            self._backbone.__dict__.pop("forward", None)
        if self.memo is not None:
            self.memo.store.clear()
        self.active = False

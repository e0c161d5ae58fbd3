"""Shared backbone pretraining: the embedded-data analogue of the paper's ImageNet initialisation.

The detector's backbone (built from the detector config, so the weights fit it exactly) is
trained as an 11-way classifier (digits 0–9 + background) on 64×64 digit-on-photo crops made on
the fly from the *train* digit scans. The backbone weights are written once and loaded by every
detector through ``backbone.init_cfg=dict(type='Pretrained', checkpoint=...)``: all three
detectors start from the same weights, so the comparison stays fair.

Glossary: B batch size, C crop side (64), K = 11 classes.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.digits import _digits, blend_digit, digit_alpha, digit_indices, random_background, tight_box
from .io import atomic_write_bytes, atomic_write_text

BACKGROUND = 10
# The detector's data_preprocessor normalisation (mmdet RetinaNet: ImageNet mean/std on RGB).
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
# Compute threads of the pretraining on any machine (its bits change with the thread count).
PRETRAIN_THREADS = 1


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining: AdamW with a one-cycle schedule on ``batch_size`` crops of side
    ``crop`` holding a digit ``min_size``-``max_size`` px high (or background)."""

    iters: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    crop: int = 64
    min_size: int = 14
    max_size: int = 56
    seed: int = 0
    eval_crops: int = 1024
    # CPU speed (benchmarks/pretrain_profile.py): channels-last layout; bfloat16 autocast of the
    # training step is available but off: a backbone pretrained with it gave the detectors lower
    # AP on all three seeds measured (RetinaNet 0.315/0.368/0.329 against 0.343/0.373/0.374).
    bf16: bool = False
    channels_last: bool = True


def make_crop(rng: np.random.Generator, cfg: PretrainConfig, split: str) -> tuple[np.ndarray, int]:
    """One training crop: (uint8[C, C, 3] RGB, label in 0..10; 10 = background)."""
    image = random_background(rng, cfg.crop).astype(np.float32)
    if rng.random() < 1 / 11:
        return image.astype(np.uint8), BACKGROUND
    scans, labels = _digits()
    pool = digit_indices(split)
    k = int(pool[rng.integers(len(pool))])
    h = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    w = int(np.clip(round(h * rng.uniform(0.5, 1.4)), 6, cfg.crop))
    alpha = digit_alpha(scans[k], w, h)
    if tight_box(alpha) is None:
        return image.astype(np.uint8), BACKGROUND
    x = int(rng.integers(0, cfg.crop - w + 1))
    y = int(rng.integers(0, cfg.crop - h + 1))
    blend_digit(rng, image, alpha, x, y, low_contrast_prob=0.15)
    return image.round().astype(np.uint8), int(labels[k])


def make_batch(rng: np.random.Generator, cfg: PretrainConfig, n: int, split: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """A normalised batch: (float32[B, 3, C, C], int64[B])."""
    crops, labels = zip(*(make_crop(rng, cfg, split) for _ in range(n)))
    x = (np.stack(crops).astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.asarray(labels, dtype=np.int64)


def crop_batches(cfg: PretrainConfig, n_batches: int) -> Any:
    """A DataLoader yielding ``n_batches`` (Tensor[B, 3, C, C], Tensor[B]) training batches.

    Crops are drawn in one worker process (seeded, so the sequence is deterministic) while the
    main process trains: drawing 128 crops costs about as much as a training step on 2 cores.
    """
    import torch

    class CropStream(torch.utils.data.IterableDataset):
        def __iter__(self):  # type: ignore[override]
            rng = np.random.default_rng([cfg.seed, 7])
            for _ in range(n_batches):
                x, y = make_batch(rng, cfg, cfg.batch_size, "train")
                yield torch.from_numpy(x), torch.from_numpy(y)

    return torch.utils.data.DataLoader(CropStream(), batch_size=None, num_workers=1, prefetch_factor=4)


def backbone_cfg(detector_cfg: Any) -> dict:
    """The detector's backbone config, trainable end to end and without any init checkpoint."""
    cfg = dict(detector_cfg.model.backbone)
    cfg.update(init_cfg=None, frozen_stages=-1, norm_eval=False)
    return cfg


def crop_classifier(bb_cfg: dict, crop: int) -> Any:
    """The pretraining model: ``ModuleDict(backbone=<bb_cfg>, head=Linear(C_last, K))``, the
    head over the mean of the last stage's features (K = 11: digits + background)."""
    import torch
    from mmdet.registry import MODELS

    backbone = MODELS.build(bb_cfg)
    with torch.no_grad():
        width = backbone(torch.zeros(1, 3, crop, crop))[-1].shape[1]
    return torch.nn.ModuleDict({"backbone": backbone, "head": torch.nn.Linear(width, BACKGROUND + 1)})


def class_logits(model: Any, x: Any, layout: Any) -> Any:
    """Float32 logits (Tensor[B, K]) of :func:`crop_classifier` ``model`` for crops ``x``
    (Tensor[B, 3, C, C]) in memory ``layout``."""
    return model["head"](model["backbone"](x.contiguous(memory_format=layout))[-1].mean(dim=(2, 3))).float()


def fingerprint(bb_cfg: dict, cfg: PretrainConfig) -> str:
    """Hash of everything that determines the pretrained weights (used as the cache key)."""
    blob = json.dumps({"backbone": bb_cfg, "pretrain": asdict(cfg)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretrain_backbone(detector_cfg: Any, out: str | Path, cfg: PretrainConfig = PretrainConfig(),
                      progress: bool = True, force: bool = False) -> dict:
    """Train the backbone classifier and write ``out`` (backbone state_dict) + ``out``.json.

    Cached: when ``out``.json records the same fingerprint the stage is skipped and the
    recorded summary is returned. Returns a summary dict (accuracy, seconds, fingerprint).
    """
    import torch
    from mmdet.utils import register_all_modules

    from .progress import progress as progress_bar

    register_all_modules()
    out = Path(out)
    meta_path = out.with_suffix(".json")
    bb_cfg = backbone_cfg(detector_cfg)
    fp = fingerprint(bb_cfg, cfg)
    if not force and out.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fp:
            meta["cached"] = True
            return meta

    torch.manual_seed(cfg.seed)
    model = crop_classifier(bb_cfg, cfg.crop)
    backbone = model["backbone"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.iters)

    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=layout)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return class_logits(model, x, layout)

    # One compute thread on any machine: the backbone's bits change with the thread count
    # (docs/reproducibility.md), and every training starts from it. One more core draws the
    # crops (crop_batches' worker); more compute threads would also spin-wait against it.
    threads = torch.get_num_threads()
    torch.set_num_threads(PRETRAIN_THREADS)
    start = time.time()
    bar = progress_bar(crop_batches(cfg, cfg.iters), total=cfg.iters, desc="pretrain backbone",
               disable=not progress, unit="it")
    model.train()
    for it, (x, y) in enumerate(bar):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            scores = logits(x)
        loss = torch.nn.functional.cross_entropy(scores, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss.item()} at iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    train_seconds = time.time() - start
    torch.set_num_threads(threads)

    model.eval()
    model.to(memory_format=torch.contiguous_format)
    eval_rng = np.random.default_rng([cfg.seed, 8])
    correct = 0
    with torch.no_grad():
        for i in range(0, cfg.eval_crops, 256):
            x, y = make_batch(eval_rng, cfg, min(256, cfg.eval_crops - i), "val")
            correct += int((logits(torch.from_numpy(x)).argmax(1).numpy() == y).sum())
    meta = {"fingerprint": fp, "accuracy": correct / cfg.eval_crops, "train_seconds": round(train_seconds, 1),
            "iters": cfg.iters, "backbone": bb_cfg, "pretrain": asdict(cfg)}
    import io
    buf = io.BytesIO()
    torch.save({"state_dict": backbone.state_dict(), "meta": {"fingerprint": fp}}, buf)
    atomic_write_bytes(out, buf.getvalue())
    atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str))
    meta["cached"] = False
    return meta

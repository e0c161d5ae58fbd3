"""Python entry points behind ``retconf train`` (:func:`train`) and ``retconf test``
(:func:`evaluate`), also used by the pipeline and the dump."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, load_checkpoint_file
from .engine.hooks import FinalValidationHook
from .errors import UsageError
from .runtime import (
    ConfigError,
    build_runner,
    finish_cfg,
    load_config,
    preflight,
    release_runner_dataloaders,
    setup_launcher,
    undo_outputs_on,
)

# Input errors found after the Runner has made its directories; their outputs are taken back.
_INPUT_ERRORS = (ConfigError, CheckpointError)


def prepare(config: str, work_dir: str | None, cfg_options: dict | None,
            data_root: str | None, launcher: str, splits: tuple[str, ...]) -> Any:
    """Load and complete a config, check its inputs exist and set up the launcher."""
    cfg = load_config(config, cfg_options, data_root)
    finish_cfg(cfg, config, work_dir)
    preflight(cfg, splits)
    setup_launcher(cfg, launcher)
    return cfg


def train(config: str, work_dir: str | None = None, cfg_options: dict | None = None,
          data_root: str | None = None, resume: str | None = None,
          launcher: str = "none", amp: bool = False, allow_partial_checkpoint: bool = False,
          feature_cache: bool = False) -> dict:
    """Train ``config``; return the last validation record written to metrics.json (or {}).

    ``feature_cache`` adds :class:`retconf.engine.FrozenFeatureCacheHook`: a frozen backbone's
    features of each training image are kept after their first pass (the same bits; the hook
    turns itself off, saying why, where that cannot hold).

    ``resume='auto'`` continues from the latest checkpoint in the work dir (fresh start when
    there is none); a path resumes from that checkpoint. A checkpoint (``--resume`` or the
    config's ``load_from``) must fit the model exactly unless ``allow_partial_checkpoint``.
    """
    cfg = prepare(config, work_dir, cfg_options, data_root, launcher, ("train", "val"))
    if allow_partial_checkpoint:
        cfg.allow_partial_checkpoint = True
    if feature_cache:
        cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="FrozenFeatureCacheHook")]
    if amp:
        import torch

        from .engine import cpu_has_bf16

        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
            cfg.optim_wrapper.pop("dtype", None)
            cfg.optim_wrapper.pop("enabled", None)
        elif cpu_has_bf16():
            cfg.optim_wrapper.type = "CPUAutocastOptimWrapper"
            cfg.optim_wrapper.dtype = "bfloat16"
            cfg.optim_wrapper.enabled = True
        else:
            raise UsageError("--amp: no CUDA device, and this CPU has no native bfloat16 (AVX512-BF16/AMX) "
                           "for CPU autocast; train without --amp")
    if resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not Path(resume).is_file():
            raise UsageError(f"--resume: checkpoint {resume} does not exist")
        load_checkpoint_file(resume)  # truncated or unsafe: fail before any output
        cfg.resume = True
        cfg.load_from = resume
    with undo_outputs_on(cfg.work_dir, _INPUT_ERRORS):
        runner = build_runner(cfg)
        runner.register_hook(FinalValidationHook())  # a run resumed at its last epoch still validates
        runner.train()
    release_runner_dataloaders(runner)
    metrics = Path(cfg.work_dir) / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else {}


def evaluate(config: str, checkpoint: str, work_dir: str | None = None,
         cfg_options: dict | None = None, data_root: str | None = None,
         launcher: str = "none", allow_partial_checkpoint: bool = False) -> dict:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics dict.

    The checkpoint must fit the model exactly (no missing or unexpected entries) unless
    ``allow_partial_checkpoint``."""
    load_checkpoint_file(checkpoint)  # missing, truncated or unsafe: fail before any output
    cfg = prepare(config, work_dir, cfg_options, data_root, launcher, ("test",))
    if allow_partial_checkpoint:
        cfg.allow_partial_checkpoint = True
    cfg.load_from = checkpoint
    with undo_outputs_on(cfg.work_dir, _INPUT_ERRORS):
        runner = build_runner(cfg)
        metrics = runner.test()
    release_runner_dataloaders(runner)
    return metrics

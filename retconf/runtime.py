"""Config loading, preflight checks and launcher setup shared by ``retconf train/test``.

Mirrors mmdet's tools/train.py and tools/test.py, with three additions: inputs are checked
before the Runner is built (one clear error instead of a deep traceback), CPU-only distributed
runs use the gloo backend, and the Runner is :class:`retconf.engine.SafeRunner`.
"""
from __future__ import annotations

import os
import os.path as osp
import time
import uuid
from pathlib import Path
from typing import Any, Optional

_REMOTE_PREFIXES = ("torchvision://", "open-mmlab://", "http://", "https://", "mmcls://", "s3://")


class ConfigError(ValueError):
    """A config or one of the files it points to is unusable."""


class CLIError(Exception):
    """An error reported as one line on stderr with a non-zero exit."""


def load_config(path: str | os.PathLike, cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None) -> Any:
    """Load an mmdet config, apply ``--cfg-options`` and an optional dataset root."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - mmengine raises many types for a bad config
        raise ConfigError(f"config {path} could not be loaded: {e}") from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    return cfg


def set_data_root(cfg: Any, root: str) -> None:
    """Point every dataloader and COCO evaluator of ``cfg`` at dataset root ``root``."""
    root = root.rstrip("/") + "/"
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if loader and "dataset" in loader:
            loader.dataset.data_root = root
        evaluator = cfg.get(f"{split}_evaluator")
        if evaluator and evaluator.get("ann_file") and loader and "dataset" in loader:
            evaluator.ann_file = root + loader.dataset.ann_file


def _local_missing(path: Optional[str]) -> bool:
    return bool(path) and not str(path).startswith(_REMOTE_PREFIXES) and not osp.isfile(path)


def preflight(cfg: Any, splits: tuple[str, ...]) -> None:
    """Check that the files a run needs exist; raise :class:`ConfigError` naming the first missing."""
    for split in splits:
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        ds = loader.dataset
        ann = osp.join(ds.get("data_root", "") or "", ds.get("ann_file", ""))
        if ds.get("ann_file") and not osp.isfile(ann):
            hint = " (make it with `retconf data digits --out DIR`)" if "digits" in ann else ""
            raise ConfigError(f"{split}_dataloader.dataset.ann_file: {ann} does not exist{hint}")
    if "train" not in splits:  # evaluation loads a full checkpoint; init weights are unused
        return
    init = (cfg.model.get("backbone") or {}).get("init_cfg") or {}
    if isinstance(init, dict) and init.get("type") == "Pretrained" and _local_missing(init.get("checkpoint")):
        raise ConfigError(
            f"model.backbone.init_cfg.checkpoint: {init['checkpoint']} does not exist "
            "(run `retconf pretrain CONFIG` first, or set it with --cfg-options)")


def setup_launcher(cfg: Any, launcher: str) -> None:
    """Prepare ``cfg`` for ``launcher``; on CPU-only torch, start a gloo process group first.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and fails without CUDA.
    Initialising gloo ourselves first makes mmengine skip its own init, and DDP is told there
    are no device ids.
    """
    import torch
    import torch.distributed as dist

    cfg.launcher = launcher
    if launcher == "none" or torch.cuda.is_available():
        return
    if launcher == "pytorch" and not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    elif launcher == "slurm" and not dist.is_initialized():
        os.environ.setdefault("RANK", os.environ.get("SLURM_PROCID", "0"))
        os.environ.setdefault("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        dist.init_process_group(backend="gloo")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)


def finish_cfg(cfg: Any, config_path: str | os.PathLike, work_dir: Optional[str]) -> None:
    """Resolve work_dir the mmdet way and add the runner type and metrics-file hook."""
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", Path(config_path).stem)
    cfg.runner_type = "SafeRunner"
    # mmengine keys its logger and visualizer singletons by name: a fixed name (mmdet's default
    # 'visualizer') or two runs started in the same second would share them, and the second run
    # would log into the first one's directory. A unique experiment name keeps runs apart.
    cfg.experiment_name = f"{Path(config_path).stem}_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
    if cfg.get("visualizer"):
        cfg.visualizer.pop("name", None)
    hooks = list(cfg.get("custom_hooks") or [])
    if not any(h.get("type") == "MetricsFileHook" for h in hooks):
        hooks.append(dict(type="MetricsFileHook"))
    cfg.custom_hooks = hooks
    imports = cfg.get("custom_imports") or dict(imports=[], allow_failed_imports=False)
    if "retconf" not in imports["imports"]:
        imports["imports"] = list(imports["imports"]) + ["retconf"]
    cfg.custom_imports = imports


def build_runner(cfg: Any) -> Any:
    """Build the Runner named by ``cfg.runner_type`` from mmdet's registry."""
    from mmdet.registry import RUNNERS
    from mmdet.utils import register_all_modules

    import retconf  # noqa: F401  (registration)

    register_all_modules(init_default_scope=False)
    return RUNNERS.build(cfg)

"""Config loading, preflight checks and launcher setup shared by ``retconf train/test``.

Mirrors mmdet's tools/train.py and tools/test.py, with three additions: inputs are checked
before the Runner is built (one clear error instead of a deep traceback), CPU-only distributed
runs use the gloo backend, and the Runner is :class:`retconf.engine.SafeRunner`.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError

_REMOTE_PREFIXES = ("torchvision://", "open-mmlab://", "http://", "https://", "mmcls://", "s3://")


def resolve_config(path: str | os.PathLike) -> Path:
    """A config path; ``mmdet::atss/atss_r50_fpn_1x_coco.py`` (mmdet's own configs, the syntax
    of ``_base_``) is looked up in the installed mmdet package."""
    text = str(path)
    if text.startswith("mmdet::"):
        import mmdet

        return Path(mmdet.__file__).parent / ".mim" / "configs" / text.removeprefix("mmdet::")
    return Path(path)


def load_config(path: str | os.PathLike, cfg_options: dict | None = None,
                data_root: str | None = None) -> Any:
    """Load an mmdet config (a file, or ``mmdet::NAME`` for one of mmdet's), apply
    ``--cfg-options`` and an optional dataset root."""
    from mmengine.config import Config

    path = resolve_config(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - mmengine raises many types for a bad config
        raise ConfigError(f"config {path} could not be loaded: {e}") from e
    if cfg_options:
        for key in cfg_options:
            check_option_key(cfg, key, path, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    return cfg


def det_registries() -> list[Any]:
    """mmdet's :class:`mmengine.registry.Registry` instances (``MODELS``, ``OPTIM_WRAPPERS``,
    ``HOOKS`` ...), with every mmdet module and this project's registered."""
    from mmdet import registry as det_registry
    from mmdet.utils import register_all_modules
    from mmengine.registry import Registry

    register_all_modules(init_default_scope=False)
    return [reg for reg in vars(det_registry).values() if isinstance(reg, Registry)]


def component_accepts(type_name: Any, argument: str, registries: list[Any] | None = None) -> bool:
    """Whether the class registered as ``type_name`` in one of ``registries`` (Registry
    instances; default :func:`det_registries`) takes ``argument`` as a named parameter of its
    constructor."""
    import inspect

    if not isinstance(type_name, str):
        return False
    for reg in det_registries() if registries is None else registries:
        cls = reg.get(type_name)
        if inspect.isclass(cls):
            try:
                return argument in inspect.signature(cls.__init__).parameters
            except (TypeError, ValueError):
                return False
    return False


def check_option_key(cfg: Any, key: str, config_path: Any = "config",
                     options: dict | None = None) -> None:
    """Refuse a ``--cfg-options`` key that is most likely a typo.

    The parent of ``key`` must exist. A new leaf key is allowed (configs take new keyword
    arguments) unless it is a near-miss of an existing sibling, like ``max_epoch`` next to
    ``max_epochs`` — and a near-miss is still allowed when the parent's component (its
    ``type``, as ``options`` may set it) takes that argument, like ``optim_wrapper.dtype``
    for an ``AmpOptimWrapper`` beside the existing ``type``.
    """
    import difflib

    node: Any = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) >= len(node):
                raise ConfigError(f"--cfg-options {key}: {'.'.join(parts[:depth]) or 'config'} has only {len(node)} items")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            if last:
                return
            where = ".".join(parts[:depth]) or "config"
            raise ConfigError(f"--cfg-options {key}: {where} is not a dict in {config_path}")
        if part not in node:
            close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.8)
            parent = ".".join(parts[:depth])
            new_type = (options or {}).get(f"{parent}.type" if parent else "type", node.get("type"))
            if last and (not close or component_accepts(new_type, part)):
                return
            where = ".".join(parts[:depth]) or "the config"
            hint = f"; did you mean {'.'.join(parts[:depth] + [close[0]])}?" if close else ""
            raise ConfigError(f"--cfg-options {key}: {where} has no key {part!r} in {config_path}{hint}")
        node = node[part]


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


def check_writable_dir(path: str | os.PathLike, what: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is, or can be created as, a writable directory
    (nothing is created here)."""
    p = Path(path).absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what}: cannot create {p}: {probe} is not a directory")
    if not os.access(probe, os.W_OK):
        raise ConfigError(f"{what}: {probe} is not writable")


def _local_missing(path: str | None) -> bool:
    return bool(path) and not str(path).startswith(_REMOTE_PREFIXES) and not osp.isfile(path)


def preflight(cfg: Any, splits: tuple[str, ...]) -> None:
    """Check that the files a run needs exist; raise :class:`ConfigError` naming the first missing."""
    from .data.coco_check import validate_coco

    for split in splits:
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        ds = loader.dataset
        root = ds.get("data_root", "") or ""
        ann = osp.join(root, ds.get("ann_file", ""))
        if ds.get("ann_file") and not osp.isfile(ann):
            raise ConfigError(f"{split}_dataloader.dataset.ann_file: {ann} does not exist (pass "
                              "--data-root DIR; `retconf data digits --out DIR` makes the embedded dataset)")
        if ds.get("ann_file") and ds.get("type", "CocoDataset") == "CocoDataset":
            validate_coco(ann, osp.join(root, (ds.get("data_prefix") or {}).get("img", "")))
    work_dir = cfg.get("work_dir")
    if work_dir:
        check_writable_dir(work_dir, "--work-dir")
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


def finish_cfg(cfg: Any, config_path: str | os.PathLike, work_dir: str | None) -> None:
    """Resolve work_dir the mmdet way; add the runner type, the metrics-file and loss-guard hooks."""
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
    for hook in ("MetricsFileHook", "LossGuardHook"):
        if not any(h.get("type") == hook for h in hooks):
            hooks.append(dict(type=hook))
    cfg.custom_hooks = hooks
    imports = cfg.get("custom_imports") or dict(imports=[], allow_failed_imports=False)
    if "retconf" not in imports["imports"]:
        imports["imports"] = list(imports["imports"]) + ["retconf"]
    cfg.custom_imports = imports


def build_runner(cfg: Any) -> Any:
    """Build the Runner named by ``cfg.runner_type`` from mmdet's registry."""
    from mmdet.registry import RUNNERS
    from mmdet.utils import register_all_modules

    import retconf.plugin  # noqa: F401  (registration)

    register_all_modules(init_default_scope=False)
    try:
        return RUNNERS.build(cfg)
    except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as e:
        # A wrong value or a typo'd key deep in the config (e.g. fusion alpha=1.5, an unknown
        # argument of a model part): one line naming the config instead of a registry traceback.
        raise ConfigError(f"config {cfg.filename} could not be built: {_short(e)}") from e


def release_dataloaders(*loaders: Any) -> None:
    """Stop the worker processes of finished dataloaders now.

    With ``persistent_workers=True`` they otherwise live until garbage collection, and mmengine's
    next dataset init (its ``gc.collect()``) then waits about 5 s per loader for them: 10 s per
    dump in a pipeline that trained before (measured)."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
            loader._iterator = None


def release_runner_dataloaders(runner: Any) -> None:
    """:func:`release_dataloaders` for the loops a Runner has built."""
    loops = [getattr(runner, name, None) for name in ("_train_loop", "_val_loop", "_test_loop")]
    release_dataloaders(*(getattr(loop, "dataloader", None) for loop in loops if not isinstance(loop, (dict, type(None)))))


@contextlib.contextmanager
def undo_outputs_on(work_dir: str | os.PathLike, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """On one of ``errors``, delete what the block created in ``work_dir`` (the whole directory
    if it did not exist before), so a run refused for bad input leaves no partial output.
    The Runner makes its work and log directories before it builds the model or loads a
    checkpoint, which is where such errors surface."""
    work_dir = Path(work_dir)
    existed = work_dir.exists()
    before = set(work_dir.iterdir()) if existed else set()
    try:
        yield
    except errors:
        if not existed:
            shutil.rmtree(work_dir, ignore_errors=True)
        elif work_dir.is_dir():
            for entry in set(work_dir.iterdir()) - before:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def _short(e: BaseException) -> str:
    """The innermost message of an exception chain, on one line."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
    return " ".join(f"{type(e).__name__}: {e}".split())

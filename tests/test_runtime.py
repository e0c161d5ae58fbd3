from __future__ import annotations

from pathlib import Path

import pytest

from retconf.runtime import ConfigError, finish_cfg, load_config, preflight
from tests.conftest import TINY_RETINANET


def test_data_root_moves_loaders_and_evaluator() -> None:
    cfg = load_config(TINY_RETINANET, data_root="/x/y")
    assert cfg.train_dataloader.dataset.data_root == "/x/y/"
    assert cfg.val_dataloader.dataset.data_root == "/x/y/"
    assert cfg.val_evaluator.ann_file == "/x/y/annotations/instances_val.json"
    assert cfg.test_evaluator.ann_file == "/x/y/annotations/instances_val.json"


def test_preflight_names_the_missing_dataset(tmp_path: Path) -> None:
    cfg = load_config(TINY_RETINANET, data_root=str(tmp_path))
    with pytest.raises(ConfigError, match=r"train_dataloader.dataset.ann_file: .*instances_train.json does not exist"):
        preflight(cfg, ("train", "val"))


def test_preflight_names_the_missing_backbone(small_digits: Path, tmp_path: Path) -> None:
    cfg = load_config(TINY_RETINANET, {"model.backbone.init_cfg.checkpoint": str(tmp_path / "bb.pth")},
                      data_root=str(small_digits))
    with pytest.raises(ConfigError, match=r"model.backbone.init_cfg.checkpoint: .*bb.pth does not exist.*retconf pretrain"):
        preflight(cfg, ("train",))
    preflight(cfg, ("test",))  # evaluation does not need the backbone's init weights


def test_typo_in_config_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(type='RetinaNet'\n")
    with pytest.raises(ConfigError, match="bad.py could not be loaded"):
        load_config(bad)


def test_finish_cfg_sets_runner_work_dir_and_hook() -> None:
    cfg = load_config(TINY_RETINANET)
    finish_cfg(cfg, TINY_RETINANET, None)
    assert cfg.work_dir == "./work_dirs/retinanet_r18-tiny_fpn_digits"
    assert cfg.runner_type == "SafeRunner"
    assert [h["type"] for h in cfg.custom_hooks].count("MetricsFileHook") == 1
    assert "name" not in cfg.visualizer


def test_release_dataloaders_stops_persistent_workers(small_digits) -> None:
    """Persistent workers of a finished loader are stopped at once (else mmengine's next dataset
    init waits for them in gc.collect())."""
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    from retconf.runtime import load_config, release_dataloaders

    register_all_modules()

    cfg = load_config(str(TINY_RETINANET), {"test_dataloader.batch_size": 8}, str(small_digits))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    assert loader.persistent_workers and loader.num_workers == 1
    for _ in loader:
        pass
    workers = list(loader._iterator._workers)
    assert all(w.is_alive() for w in workers)
    release_dataloaders(loader, None)
    assert loader._iterator is None and not any(w.is_alive() for w in workers)


def test_new_cfg_option_that_the_component_takes_is_not_a_typo() -> None:
    """``dtype`` is one edit from ``type`` but is an argument of AmpOptimWrapper: a new key,
    accepted; for the plain OptimWrapper it is refused (it would fail when built)."""
    from retconf.runtime import ConfigError, check_option_key, load_config
    from tests.conftest import TINY_RETINANET

    plain = {"optim_wrapper": {"type": "OptimWrapper", "optimizer": {"type": "SGD"}}}
    check_option_key(plain, "optim_wrapper.dtype", options={"optim_wrapper.type": "AmpOptimWrapper"})
    with pytest.raises(ConfigError, match=r"optim_wrapper has no key 'dtype'.*did you mean optim_wrapper.type\?"):
        check_option_key(plain, "optim_wrapper.dtype")
    # the tiny configs' CPU autocast wrapper has dtype and enabled; a near-miss it does not take is refused
    cfg = load_config(str(TINY_RETINANET), {"optim_wrapper.dtype": "float16"})
    assert cfg.optim_wrapper.dtype == "float16"
    with pytest.raises(ConfigError, match="did you mean optim_wrapper.enabled"):
        load_config(str(TINY_RETINANET), {"optim_wrapper.enable": False})
    with pytest.raises(ConfigError, match="did you mean train_cfg.max_epochs"):
        load_config(str(TINY_RETINANET), {"train_cfg.max_epoch": 2})

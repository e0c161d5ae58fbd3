"""Shared fixtures: a small embedded dataset and the path of the tiny RetinaNet config."""
from __future__ import annotations

from pathlib import Path

import pytest

from retconf.data.digits import DigitsConfig, generate

ROOT = Path(__file__).resolve().parents[1]
TINY_RETINANET = ROOT / "experiments" / "retinanet_r18-tiny_fpn_digits.py"
SMALL = DigitsConfig(num_train=16, num_val=8, seed=3)


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16+8-image digits dataset shared by the whole session (do not modify)."""
    return generate(SMALL, tmp_path_factory.mktemp("data") / "digits")


def fast_train_options(max_epochs: int = 1) -> dict:
    """--cfg-options that make the tiny config train in seconds on the small dataset."""
    return {
        "model.backbone.init_cfg": None,
        "train_dataloader.batch_size": 4,
        "train_dataloader.num_workers": 0,
        "train_dataloader.persistent_workers": False,
        "val_dataloader.batch_size": 4,
        "val_dataloader.num_workers": 0,
        "val_dataloader.persistent_workers": False,
        "test_dataloader.num_workers": 0,
        "test_dataloader.persistent_workers": False,
        "train_cfg.max_epochs": max_epochs,
        "train_cfg.val_interval": max_epochs,
        "param_scheduler": [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)],
        "default_hooks.logger.interval": 1,
        "default_hooks.checkpoint.interval": 1,
        "default_hooks.checkpoint.max_keep_ckpts": 10,
        "randomness.seed": 0,
    }


# `quick_run` below runs for minutes (its subprocess may take up to QUICK_RUN_S); pytest-timeout
# counts a fixture's time towards the first test that uses it, and which test that is depends on
# the selection. Every test that uses it gets this budget on top of the default (pyproject.toml).
QUICK_RUN_S = 900
QUICK_RUN_TEST_TIMEOUT = QUICK_RUN_S + 900  # + what the test itself may run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "quick_run" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(QUICK_RUN_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`retconf reproduce --preset quick --seeds 2 --full` run once per session (a few minutes):
    20 one-epoch trainings on 64 images, their dumps and the five reports."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("quick")
    args = [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", "quick",
            "--seeds", "2", "--full",
            "--out", str(base / "run"), "--data-root", str(base / "data"), "--reports", str(base / "reports")]
    first = subprocess.run(args, capture_output=True, text=True, timeout=QUICK_RUN_S, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    return {"run": base / "run", "data": base / "data", "reports": base / "reports", "args": args,
            "first": first}

from __future__ import annotations

import subprocess
import sys

import pytest

from retconf.cli import build_parser


@pytest.mark.parametrize("argv", [[], ["data", "digits"], ["pretrain"], ["train"], ["test"], ["reproduce"]])
def test_help_of_every_command(argv: list[str]) -> None:
    res = subprocess.run([sys.executable, "-m", "retconf.cli", *argv, "--help"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: retconf")


def test_train_flags_follow_mmdet_tools() -> None:
    args = build_parser().parse_args(
        ["train", "cfg.py", "--work-dir", "w", "--resume", "--launcher", "pytorch",
         "--cfg-options", "train_cfg.max_epochs=2", "model.bbox_head.num_classes=3"])
    assert args.resume == "auto" and args.launcher == "pytorch" and args.work_dir == "w"
    assert args.cfg_options == {"train_cfg.max_epochs": 2, "model.bbox_head.num_classes": 3}
    assert build_parser().parse_args(["train", "cfg.py", "--resume", "x.pth"]).resume == "x.pth"
    assert build_parser().parse_args(["train", "cfg.py"]).resume is None


def test_feature_cache_switches_reach_train_and_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    import retconf.apis
    import retconf.pipeline
    from retconf.cli import main

    seen = {}
    monkeypatch.setattr(retconf.apis, "train", lambda *a, **k: seen.setdefault("train", a) and {})
    monkeypatch.setattr(retconf.pipeline, "reproduce", lambda *a, **k: seen.setdefault("reproduce", k))
    assert main(["train", "cfg.py", "--feature-cache"]) == 0 and seen["train"][-1] is True
    assert main(["reproduce", "--no-feature-cache"]) == 0 and seen["reproduce"]["feature_cache"] is False
    seen.clear()
    main(["train", "cfg.py"])
    main(["reproduce"])
    assert seen["train"][-1] is False and seen["reproduce"]["feature_cache"] is True


def test_missing_config_is_one_clear_error(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "retconf.cli", "train", str(tmp_path / "nope.py")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == f"retconf train: error: config {tmp_path / 'nope.py'} does not exist"

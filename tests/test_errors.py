"""Library errors and the exit status the ``retconf`` command gives each."""
from __future__ import annotations

import pytest

from retconf.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    ReportError,
    RetconfError,
    TrainingDiverged,
    UsageError,
    exit_code,
)


@pytest.mark.parametrize("error, code", [
    (UsageError("--seeds"), 2), (ConfigError("cfg"), 2), (DatasetError("ann"), 2),
    (CheckpointError("ckpt"), 2), (ReportError("nb"), 2), (TrainingDiverged("nan"), 3), (KeyError("x"), 1),
])
def test_exit_codes(error: Exception, code: int) -> None:
    assert exit_code(error) == code


def test_errors_keep_their_builtin_bases() -> None:
    """Callers that caught ValueError / RuntimeError / FloatingPointError still do."""
    assert issubclass(DatasetError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(CheckpointError, RuntimeError) and issubclass(ReportError, RuntimeError)
    assert issubclass(TrainingDiverged, FloatingPointError)
    assert all(issubclass(e, RetconfError) for e in (UsageError, ConfigError, DatasetError, CheckpointError))


def test_coco_validator_and_digits_generator_share_the_dataset_error() -> None:
    from retconf.data import coco_check, digits

    assert coco_check.DatasetError is digits.DatasetError is DatasetError


def test_cli_turns_a_library_error_into_its_exit_status(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from retconf.cli import main

    assert main(["reproduce", "--seeds", "0", "--out", str(tmp_path / "run"), "--dry-run"]) == 2
    assert "retconf reproduce: error: --seeds: must be at least 1, got 0" in capsys.readouterr().err

"""The errors retconf's library code raises. Each names the offending file, field or option in
its message; ``retconf`` (:mod:`retconf.cli`) prints it as one line and turns the class into an
exit status (:data:`EXIT_CODES`). Importing this module loads nothing else but the light
:mod:`analysis.inputs.errors`, where :class:`RetconfError` and :class:`DatasetError` are defined.
"""
from __future__ import annotations

# the two the analysis layer raises itself (COCO checks) live there; re-exported here
from analysis.inputs.errors import DatasetError, RetconfError  # noqa: F401  (re-exported)


class UsageError(RetconfError, ValueError):
    """An argument value that cannot be used (``--seeds 0``, an unknown preset, ``--jobs 0``)."""


class ConfigError(RetconfError, ValueError):
    """A config or one of the files it points to is unusable."""


class CheckpointError(RetconfError, RuntimeError):
    """A checkpoint that cannot be loaded safely (or at all)."""


class ReportError(RetconfError, RuntimeError):
    """A report that cannot be made; a failed notebook is named with its cell and kept."""


class TrainingDiverged(RetconfError, FloatingPointError):
    """A loss term became NaN or infinite during training."""


# exit status of ``retconf`` per error class; the most specific class that matches wins
EXIT_CODES: dict[type[Exception], int] = {TrainingDiverged: 3, RetconfError: 2}


def exit_code(error: BaseException) -> int:
    """The exit status for ``error`` (:data:`EXIT_CODES`; 1 for anything else)."""
    for cls, code in EXIT_CODES.items():
        if isinstance(error, cls):
            return code
    return 1

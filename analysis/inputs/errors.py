"""The errors the analysis layer shares with retconf's CLI: :class:`RetconfError` (one line on
stderr, exit status 2 under ``retconf``) and :class:`DatasetError` (a COCO file that fails its
checks, :mod:`analysis.inputs.coco_check`). :mod:`retconf.errors` re-exports both and adds the training
stack's own. Importing this module loads nothing else.
"""
from __future__ import annotations


class RetconfError(Exception):
    """Base of every error retconf reports as one line instead of a traceback."""


class DatasetError(RetconfError, ValueError):
    """Invalid dataset parameters or annotations, or an output location that cannot be used."""


__all__ = ["DatasetError", "RetconfError"]

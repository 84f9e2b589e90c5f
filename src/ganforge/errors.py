"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class GanforgeError(Exception):
    """Base class: a clear, one-line, user-facing problem (bad input, missing file, bad flag)."""


class DataError(GanforgeError):
    """A dataset or image could not be used."""


class WeightsError(GanforgeError):
    """Pretrained weights are missing, corrupt, or of the wrong layout."""


class CheckpointError(GanforgeError):
    """A run directory or checkpoint is missing, truncated or incompatible."""

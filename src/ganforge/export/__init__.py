"""Trained models as files others can load: a generator as one self-describing safetensors file
(``generator_file.py``, layout in docs/export.md) and ``export_run`` for a run directory."""

from __future__ import annotations

from .generator_file import (FORMAT, FORMAT_VERSION, SPEC_FIELDS, SUFFIX, export_generator, export_metadata,
                             load_exported, read_export)
from .run import export_run

__all__ = ["FORMAT", "FORMAT_VERSION", "SPEC_FIELDS", "SUFFIX", "export_generator", "export_metadata",
           "load_exported", "read_export", "export_run"]

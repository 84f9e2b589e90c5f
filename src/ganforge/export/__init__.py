"""Trained models as files others can load: any model as one self-describing safetensors file
(``save_pretrained`` / ``from_pretrained``, layout in docs/export.md; a GAN run's generator keeps
the ``ganforge.generator`` layout of ``generator_file.py``), an ONNX graph (``export_onnx``, needs the
``onnx`` extra) and ``export_run`` for a run directory of any task.

The contract itself is :mod:`ganforge.export.contract` (it imports no family; each family registers
its adapter from its own package). The functions here first import every family
(:func:`~ganforge.export.families.load_families`), so they work for any family."""

from __future__ import annotations

import functools

from . import contract
from .container import MODEL_FORMAT, MODEL_FORMAT_VERSION
from .contract import Family
from .families import load_families
from .generator_file import (FORMAT, FORMAT_VERSION, SPEC_FIELDS, SUFFIX, export_generator, export_metadata,
                             load_exported, read_export)
from .run import FORMATS, export_run


def _with_every_family(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        load_families()
        return fn(*args, **kwargs)

    return call


save_pretrained = _with_every_family(contract.save_pretrained)
from_pretrained = _with_every_family(contract.from_pretrained)
read_pretrained = _with_every_family(contract.read_pretrained)
file_family = _with_every_family(contract.file_family)
family_of = _with_every_family(contract.family_of)


def export_onnx(obj, path, **kwargs):
    """See :func:`ganforge.export.onnx.export_onnx` (imported when called: it needs torch.onnx)."""
    from .onnx import export_onnx as export

    return export(obj, path, **kwargs)


def __getattr__(name: str):
    if name == "FAMILIES":  # the registry, with every family registered
        return load_families()
    raise AttributeError(f"module 'ganforge.export' has no attribute {name!r}")


__all__ = ["FORMAT", "FORMAT_VERSION", "SPEC_FIELDS", "SUFFIX", "export_generator", "export_metadata",
           "load_exported", "read_export", "export_run", "FORMATS", "MODEL_FORMAT", "MODEL_FORMAT_VERSION",
           "FAMILIES", "Family", "family_of", "file_family", "from_pretrained", "load_families", "read_pretrained",
           "save_pretrained", "export_onnx"]

"""Trained models as files others can load: any model as one self-describing safetensors file
(``save_pretrained`` / ``from_pretrained``, layout in docs/export.md; a GAN run's generator keeps
the ``ganforge.generator`` layout of ``generator_file.py``), an ONNX graph (``export_onnx``, needs the
``onnx`` extra) and ``export_run`` for a run directory of any task."""

from __future__ import annotations

from .container import MODEL_FORMAT, MODEL_FORMAT_VERSION
from .families import FAMILIES, Family, family_of
from .generator_file import (FORMAT, FORMAT_VERSION, SPEC_FIELDS, SUFFIX, export_generator, export_metadata,
                             load_exported, read_export)
from .pretrained import file_family, from_pretrained, read_pretrained, save_pretrained
from .run import FORMATS, export_run


def export_onnx(obj, path, **kwargs):
    """See :func:`ganforge.export.onnx.export_onnx` (imported when called: it needs torch.onnx)."""
    from .onnx import export_onnx as export

    return export(obj, path, **kwargs)


__all__ = ["FORMAT", "FORMAT_VERSION", "SPEC_FIELDS", "SUFFIX", "export_generator", "export_metadata",
           "load_exported", "read_export", "export_run", "FORMATS", "MODEL_FORMAT", "MODEL_FORMAT_VERSION",
           "FAMILIES", "Family", "family_of", "file_family", "from_pretrained", "read_pretrained",
           "save_pretrained", "export_onnx"]

"""``save_pretrained(obj, path)`` / ``from_pretrained(path)``: any ganforge model as one
self-describing safetensors file (layout: docs/export.md).

The file holds the network's ``state_dict`` under its own module names and, in safetensors'
string metadata: ``format`` ("ganforge.model"), ``format_version``, ``family`` (generator,
translator, style-decoder, upscaler, inpainter), ``arch``, ``spec`` (JSON: what rebuilds the
network strictly), ``ganforge_version``, ``data_sha256`` (sha256 of the tensor bytes) and a few
family keys (a generator's ``class_names`` and ``step``, a style decoder's ``layer`` and
``encoder``). The family adapters live in :mod:`ganforge.export.families`. Generator exports of
the older ``ganforge.generator`` layout are read too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..version import __version__
from ..errors import CheckpointError, GanforgeError
from .container import MODEL_FORMAT, MODEL_FORMAT_VERSION, read_checked, write_checked
from .families import FAMILIES, family_of

RESERVED = ("format", "format_version", "family", "arch", "spec", "ganforge_version", "data_sha256")


def model_metadata(obj: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata strings without the checksum, tensors) of ``obj``."""
    family = family_of(obj)
    adapter = FAMILIES.get(family)
    arch, spec, net = adapter.parts(obj)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    meta = {"format": MODEL_FORMAT, "format_version": str(MODEL_FORMAT_VERSION), "family": family, "arch": arch,
            "spec": json.dumps(spec, sort_keys=True), "ganforge_version": __version__}
    extra = adapter.extra(obj)
    if clash := set(extra) & set(RESERVED):  # pragma: no cover (a family adapter's mistake)
        raise RuntimeError(f"family {family} metadata reuses reserved keys {sorted(clash)}")
    return {**meta, **extra}, tensors


def save_pretrained(obj: Any, path: str | Path) -> dict[str, Any]:
    """Write a model of any family to ``path`` (a ``.safetensors`` name), atomically. Returns a
    summary: output, bytes, tensors, metadata."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise GanforgeError(f"{path}: use a .safetensors file name")
    meta, tensors = model_metadata(obj)
    blob = write_checked(tensors, meta, path)
    return {"output": str(path), "bytes": len(blob), "tensors": len(tensors), "metadata": meta}


def _foreign(path: Path, header: dict[str, Any]) -> str:
    return (f"{path} is not a ganforge model file (its safetensors metadata has no format={MODEL_FORMAT!r}); "
            "write one with ganforge export RUN --out FILE.safetensors or ganforge.export.save_pretrained")


def read_pretrained(path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensors) of a model file (either layout), checked: a missing, truncated, corrupt,
    foreign or too new file is a one-line CheckpointError."""
    from .generator_file import FORMAT, FORMAT_VERSION

    return read_checked(path, {MODEL_FORMAT: MODEL_FORMAT_VERSION, FORMAT: FORMAT_VERSION}, _foreign)


def file_family(path: str | Path) -> str | None:
    """The family of a ganforge model file (``generator`` for the older generator layout), read from
    its header only; None for any other file (or none). For loaders deciding what a path is."""
    from .container import data_section

    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= 100 * 2 ** 20:
                return None
            header, _ = data_section(head + handle.read(n))
    except (OSError, ValueError):
        return None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        return None
    if meta.get("format") == "ganforge.generator":
        return "generator"
    return meta.get("family") if meta.get("format") == MODEL_FORMAT else None


def from_pretrained(path: str | Path, *, family: str | None = None) -> Any:
    """The model of a file written by :func:`save_pretrained` or ``ganforge export``, rebuilt from
    its ``arch`` and ``spec`` and loaded strictly: a :class:`~ganforge.generator.Generator`, a
    ``Translator``, an ``AdaINDecoder``, an upscaler network or an ``Inpainter`` (on the CPU, fp32,
    eval mode). ``family``: the family the caller expects (another is a one-line error)."""
    from .generator_file import FORMAT, load_exported

    path = Path(path)
    meta, tensors = read_pretrained(path)
    found = "generator" if meta["format"] == FORMAT else str(meta.get("family", ""))
    if family is not None and found != family:
        raise CheckpointError(f"{path} holds a {found!r} model, not a {family!r} one")
    if meta["format"] == FORMAT:  # the older generator layout
        return load_exported(path)
    if found not in FAMILIES.names():
        raise CheckpointError(f"{path} holds a model of family {found!r}, which this version of ganforge cannot "
                              f"load (known: {', '.join(sorted(FAMILIES.names()))})")
    try:
        spec = json.loads(meta.get("spec", ""))
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path}: metadata spec must be a JSON object")
    try:
        return FAMILIES.get(found).rebuild(str(meta.get("arch", "")), spec, tensors, meta, path)
    except KeyError as exc:
        raise CheckpointError(f"{path}: metadata spec lacks {exc}") from None

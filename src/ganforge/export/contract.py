"""The save/load contract every model family shares: ``save_pretrained(obj, path)`` /
``from_pretrained(path)``, any ganforge model as one self-describing safetensors file (layout:
docs/export.md), and the registry of family adapters it goes through.

The file holds the network's ``state_dict`` under its own module names and, in safetensors'
string metadata: ``format`` ("ganforge.model"), ``format_version``, ``family`` (generator,
translator, style-decoder, upscaler, inpainter), ``arch``, ``spec`` (JSON: what rebuilds the
network strictly), ``ganforge_version``, ``data_sha256`` (sha256 of the tensor bytes) and a few
family keys (a generator's ``class_names`` and ``step``, a style decoder's ``layer`` and
``encoder``).

This module imports no family. Each family registers its :class:`Family` adapter in
:data:`FAMILIES` from the module that defines its loader (as run loaders register with
``train.rundir.register_run_task``), so a family's loader can call :func:`from_pretrained` with
``family=`` and find its adapter registered; ``ganforge.export`` (the package) imports every
family before its ``save_pretrained`` / ``from_pretrained``. A family may read older file layouts
of its own (``Family.layouts``: the generator's ``ganforge.generator`` files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CheckpointError, GanforgeError
from ..registry import Registry
from ..version import __version__
from .container import MAX_HEADER, MODEL_FORMAT, MODEL_FORMAT_VERSION, data_section, read_checked, write_checked

Tensors = dict[str, torch.Tensor]
RESERVED = ("format", "format_version", "family", "arch", "spec", "ganforge_version", "data_sha256")


@dataclass(frozen=True)
class Family:
    """How one model family is taken apart and rebuilt.

    ``matches(obj)``; ``parts(obj)`` -> (arch, spec, network); ``extra(obj)`` -> more metadata
    strings; ``rebuild(arch, spec, tensors, meta, path)`` -> the object, loaded strictly.
    ``layouts``: older whole-file layouts this family also reads ({format: newest format_version}),
    each rebuilt by ``load_layout(meta, tensors, path)``."""

    matches: Callable[[Any], bool]
    parts: Callable[[Any], tuple[str, dict[str, Any], nn.Module]]
    rebuild: Callable[[str, dict[str, Any], Tensors, dict[str, str], Path], Any]
    extra: Callable[[Any], dict[str, str]] = lambda obj: {}
    layouts: dict[str, int] = field(default_factory=dict)
    load_layout: Callable[[dict[str, str], Tensors, Path], Any] | None = None


FAMILIES: Registry[Family] = Registry("model family")


def family_of(obj: Any) -> str:
    """The family name of a model object, or a one-line GanforgeError."""
    for name in FAMILIES.names():
        if FAMILIES.get(name).matches(obj):
            return name
    raise GanforgeError(f"cannot save a {type(obj).__name__}: not a model of any family "
                        f"({', '.join(FAMILIES.names())})")


def build_from_spec(cls: type, kwargs: dict[str, Any], path: Path, what: str) -> nn.Module:
    """``cls(**kwargs)`` for a file's spec, or a one-line CheckpointError (for adapters' ``rebuild``)."""
    try:
        return cls(**kwargs)
    except Exception as exc:  # a spec this version cannot build (unknown key, bad value)
        raise CheckpointError(f"{path}: cannot build {what} from spec {json.dumps(kwargs)}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None


def _layout_owner(fmt: Any) -> str | None:
    """The family that reads the older file layout ``fmt``, if one is registered."""
    return next((name for name in FAMILIES.names() if fmt in FAMILIES.get(name).layouts), None)


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
    """Write a model of any registered family to ``path`` (a ``.safetensors`` name), atomically.
    Returns a summary: output, bytes, tensors, metadata."""
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
    """(metadata, tensors) of a model file (this layout, or a registered family's older one),
    checked: a missing, truncated, corrupt, foreign or too new file is a one-line CheckpointError."""
    versions = {MODEL_FORMAT: MODEL_FORMAT_VERSION}
    for name in FAMILIES.names():
        versions.update(FAMILIES.get(name).layouts)
    return read_checked(path, versions, _foreign)


def file_family(path: str | Path) -> str | None:
    """The family of a ganforge model file (for a registered family's older layout, that family),
    read from its header only; None for any other file (or none). For loaders deciding what a path is."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= MAX_HEADER:
                return None
            header, _ = data_section(head + handle.read(n))
    except (OSError, ValueError):
        return None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        return None
    if meta.get("format") == MODEL_FORMAT:
        return meta.get("family")
    return _layout_owner(meta.get("format"))


def from_pretrained(path: str | Path, *, family: str | None = None) -> Any:
    """The model of a file written by :func:`save_pretrained` or ``ganforge export``, rebuilt from
    its ``arch`` and ``spec`` and loaded strictly: a :class:`~ganforge.generator.Generator`, a
    ``Translator``, an ``AdaINDecoder``, an upscaler network or an ``Inpainter`` (on the CPU, fp32,
    eval mode). ``family``: the family the caller expects (another is a one-line error)."""
    path = Path(path)
    meta, tensors = read_pretrained(path)
    older = meta["format"] != MODEL_FORMAT
    found = _layout_owner(meta["format"]) if older else str(meta.get("family", ""))
    if family is not None and found != family:
        raise CheckpointError(f"{path} holds a {found!r} model, not a {family!r} one")
    if older:
        return FAMILIES.get(found).load_layout(meta, tensors, path)
    if found not in FAMILIES:
        raise CheckpointError(f"{path} holds a model of family {found!r}, which this version of ganforge cannot "
                              f"load (known: {', '.join(FAMILIES.names())}; import ganforge.export to register "
                              "every family)")
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

"""A trained generator as one self-describing safetensors file (layout: docs/export.md).

The file holds one generator's ``state_dict`` under the architecture's own module names and, in
safetensors' string metadata, everything needed to rebuild it (format, arch, the
:class:`~ganforge.nets.GanNetSpec` fields, class names, ganforge version, training step) plus a
sha256 of the tensor bytes, so it can be shared, loaded without its run directory, and read with
plain ``safetensors`` by other tools. Nothing here is specific to an architecture: any registered
one is rebuilt from ``arch`` and the spec and loaded strictly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import CheckpointError, GanforgeError
from ..generator import Generator
from ..nets import GanNetSpec, build_gan
from ..train.checkpoint import write_bytes_atomic

FORMAT = "ganforge.generator"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(GanNetSpec))
MAX_HEADER = 100 * 2 ** 20  # safetensors' own limit on the JSON header


def _data_section(blob: bytes) -> tuple[dict[str, Any], int]:
    """(header, offset of the tensor data) of a safetensors byte string, or ValueError."""
    if len(blob) < 8:
        raise ValueError(f"{len(blob)} bytes, shorter than a safetensors header")
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER or 8 + n > len(blob):
        raise ValueError("the header length does not fit the file (truncated, or not a safetensors file)")
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, 8 + n


def export_metadata(gen, *, ema: bool = True) -> dict[str, str]:
    """The metadata strings of an export of ``gen`` (a :class:`ganforge.sample.Generator`),
    without the checksum."""
    if not gen.arch:
        raise GanforgeError("this generator does not know its architecture; load it with ganforge.load_generator")
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION), "arch": gen.arch,
            **{name: json.dumps(getattr(gen.spec, name)) for name in SPEC_FIELDS},
            "class_names": json.dumps(list(gen.class_names)), "ganforge_version": __version__,
            "step": str(int(gen.step)), "weights": "ema" if ema else "raw"}


def export_generator(gen, path: str | Path, *, ema: bool = True) -> dict[str, Any]:
    """Write ``gen``'s EMA generator (``ema=False``: the raw one) to ``path`` as one safetensors
    file, atomically (a temporary file renamed into place). Returns a summary with the metadata."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != SUFFIX:
        raise GanforgeError(f"{path}: use a {SUFFIX} file name")
    net = gen.G_ema if ema else gen.G
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    meta = export_metadata(gen, ema=ema)
    # The data section does not depend on the metadata (safetensors orders tensors by dtype and
    # name), so its hash can be computed first and then stored in the header.
    first = save(tensors, metadata=meta)
    digest = hashlib.sha256(memoryview(first)[_data_section(first)[1]:]).hexdigest()
    meta["data_sha256"] = digest
    blob = save(tensors, metadata=meta)
    if hashlib.sha256(memoryview(blob)[_data_section(blob)[1]:]).hexdigest() != digest:
        raise RuntimeError("safetensors laid the tensors out differently the second time")  # pragma: no cover
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, blob)
    return {"output": str(path), "bytes": len(blob), "tensors": len(tensors), "metadata": meta}


def _names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def read_export(path: str | Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a generator export, checked: a missing, truncated, corrupt or foreign
    file is a one-line :class:`~ganforge.errors.CheckpointError`."""
    from safetensors.torch import load

    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        header, start = _data_section(blob)
    except ValueError as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        if any(key.startswith("G_ema.") for key in header):
            raise CheckpointError(f"{path} is a training checkpoint, not a generator export: pass its run "
                                  f"directory, or write an export with: ganforge export RUN --out FILE{SUFFIX}")
        raise CheckpointError(f"{path} is not a ganforge generator export (its safetensors metadata has no "
                              f"format={FORMAT!r}); write one with: ganforge export RUN --out FILE{SUFFIX}")
    version = str(meta.get("format_version", ""))
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version!r}; this ganforge reads versions up to "
                              f"{FORMAT_VERSION} (a newer ganforge wrote it?)")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise CheckpointError(f"{path} is corrupt: a tensor entry in its header has no valid data_offsets") from None
    if len(blob) - start < end:
        raise CheckpointError(f"{path} is truncated: its header promises {end} bytes of tensor data, "
                              f"the file holds {len(blob) - start}")
    expected = meta.get("data_sha256")
    if expected is not None and hashlib.sha256(memoryview(blob)[start:]).hexdigest() != expected:
        raise CheckpointError(f"{path} is corrupt: its tensor data does not match data_sha256 in its metadata")
    try:
        tensors = load(blob)
    except Exception as exc:  # safetensors' own checks (offsets, dtypes, shapes)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is corrupt: {first}") from None
    return meta, tensors


def _spec(meta: dict[str, str], path: Path) -> GanNetSpec:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(GanNetSpec):
        if field.name not in meta:
            if field.default is dataclasses.MISSING:
                raise CheckpointError(f"{path}: metadata key {field.name!r} is missing")
            continue
        try:
            value = json.loads(meta[field.name])
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{path}: metadata {field.name}={meta[field.name]!r} is not a non-negative integer")
        values[field.name] = value
    return GanNetSpec(**values)


def load_exported(path: str | Path):
    """A :class:`ganforge.sample.Generator` from a generator export: the network of the file's
    ``arch`` built for its spec, loaded strictly (every key, every shape). The file holds one
    generator, so ``G`` and ``G_ema`` are the same network; ``run_dir`` is the file."""
    path = Path(path)
    meta, tensors = read_export(path)
    arch = meta.get("arch", "")
    spec = _spec(meta, path)
    try:
        G, _ = build_gan(arch, spec)
    except GanforgeError as exc:  # an architecture this version does not have
        raise CheckpointError(f"{path}: {exc}") from None
    except Exception as exc:  # the arch refuses the spec (e.g. a resolution it cannot build)
        raise CheckpointError(f"{path}: cannot build a {arch} generator for {spec}: {exc}") from None
    want = G.state_dict()
    missing, unexpected = want.keys() - tensors.keys(), tensors.keys() - want.keys()
    if missing or unexpected:
        parts = ([f"missing {_names(missing)}"] if missing else []) + ([f"unexpected {_names(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{path} does not match a {arch} generator for {spec}: keys {'; '.join(parts)}")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(want[key].shape):
            raise CheckpointError(f"{path}: tensor {key} has shape {tuple(value.shape)}, a {arch} generator for "
                                  f"{spec} has {tuple(want[key].shape)}")
    try:
        G.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied into the parameter
        raise CheckpointError(f"{path} does not load into a {arch} generator: {str(exc).strip().splitlines()[0]}") from None
    try:
        class_names = json.loads(meta.get("class_names", "[]"))
        step = int(meta.get("step", "0"))
    except ValueError:
        raise CheckpointError(f"{path}: metadata class_names must be a JSON list and step an integer") from None
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        raise CheckpointError(f"{path}: metadata class_names must be a JSON list of strings")
    return Generator(G, G, spec, class_names, step, path, arch=arch)

"""The checked safetensors container every ganforge model file uses: tensors plus string metadata
with a sha256 of the tensor bytes (``data_sha256``), written atomically and read back with every
check a shared file needs (missing, truncated, corrupt, foreign, too new) as a one-line
:class:`~ganforge.errors.CheckpointError`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError

MAX_HEADER = 100 * 2 ** 20  # safetensors' own limit on the JSON header
MODEL_FORMAT = "ganforge.model"  # save_pretrained's layout, every family (export/contract.py)
MODEL_FORMAT_VERSION = 1


def data_section(blob: bytes) -> tuple[dict[str, Any], int]:
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


def write_checked(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> bytes:
    """Write ``tensors`` with ``meta`` plus ``data_sha256`` to ``path`` atomically; returns the bytes
    (``meta`` gains the checksum)."""
    from safetensors.torch import save

    from ..train.checkpoint import write_bytes_atomic

    # The data section does not depend on the metadata (safetensors orders tensors by dtype and
    # name), so its hash can be computed first and then stored in the header.
    first = save(tensors, metadata=meta)
    digest = hashlib.sha256(memoryview(first)[data_section(first)[1]:]).hexdigest()
    meta["data_sha256"] = digest
    blob = save(tensors, metadata=meta)
    if hashlib.sha256(memoryview(blob)[data_section(blob)[1]:]).hexdigest() != digest:
        raise RuntimeError("safetensors laid the tensors out differently the second time")  # pragma: no cover
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, blob)
    return blob


def read_checked(path: str | Path, versions: dict[str, int],
                 foreign: Callable[[Path, dict[str, Any]], str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a file whose metadata ``format`` is a key of ``versions`` (the newest
    format_version this ganforge reads for it); ``foreign(path, header)`` words the error for any
    other safetensors file."""
    from safetensors.torch import load

    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        header, start = data_section(blob)
    except ValueError as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") not in versions:
        raise CheckpointError(foreign(path, header))
    newest = versions[meta["format"]]
    version = str(meta.get("format_version", ""))
    if not version.isdigit() or int(version) > newest:
        raise CheckpointError(f"{path} has format version {version!r}; this ganforge reads versions up to "
                              f"{newest} (a newer ganforge wrote it?)")
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


def names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_strict(net: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path, what: str) -> torch.nn.Module:
    """``tensors`` into ``net`` strictly (every key, every shape), or a one-line CheckpointError."""
    want = net.state_dict()
    missing, unexpected = want.keys() - tensors.keys(), tensors.keys() - want.keys()
    if missing or unexpected:
        parts = ([f"missing {names(missing)}"] if missing else []) + ([f"unexpected {names(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{path} does not match {what}: keys {'; '.join(parts)}")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(want[key].shape):
            raise CheckpointError(f"{path}: tensor {key} has shape {tuple(value.shape)}, {what} has "
                                  f"{tuple(want[key].shape)}")
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied into the parameter
        raise CheckpointError(f"{path} does not load into {what}: {str(exc).strip().splitlines()[0]}") from None
    return net

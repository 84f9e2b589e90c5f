"""Read an official StyleGAN2-ADA network pickle (NVlabs/stylegan2-ada-pytorch ``.pkl``) as plain
data, without running anything from the file.

The official files are ``pickle.dump(dict(G=..., D=..., G_ema=..., ...))`` of modules decorated
with ``torch_utils.persistence.persistent_class``: each module is stored as a call of
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the Python
source of the module that defined the class (``module_src``, which the official loader
``exec``s), the class name, and the object's ``__dict__`` (``state``: parameters, buffers,
submodules, ``_init_args`` / ``_init_kwargs``). Here the unpickler's ``find_class`` answers only an
explicit allow-list, each entry replaced by ganforge's own function:

- tensors and storages: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (rebuilt from
  a storage this loader made), ``torch.storage._load_from_bytes`` (read with
  ``torch.load(weights_only=True)``);
- plain containers: ``collections.OrderedDict``, ``builtins.set``, ``dnnlib.util.EasyDict`` (a dict);
- numpy numeric scalars (``numpy.core.multiarray.scalar`` with ``numpy.dtype``), decoded from bytes;
- ``torch_utils.persistence._reconstruct_persistent_obj``: returns a :class:`PersistentObject`
  (class name, init args/kwargs, state). ``module_src`` is never compiled or run.

Anything else (another global, e.g. a ``__reduce__`` payload naming ``os.system``; a persistent id)
is refused with one line, before anything of it runs.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import WeightsError


class EasyDict(dict):
    """What ``dnnlib.util.EasyDict`` (a dict with attribute access) is read as: a dict."""

    def __setstate__(self, state: Any) -> None:  # BUILD with the instance __dict__: nothing to keep
        if state not in (None, {}):
            raise pickle.UnpicklingError("unexpected state for an EasyDict")


@dataclass
class PersistentObject:
    """A ``persistent_class`` instance as data: never the class itself."""

    class_name: str
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)  # the object's __dict__ (torch.nn.Module internals)
    source_sha256: str = ""  # of the embedded module source, which is never run

    def tensors(self) -> dict[str, torch.Tensor]:
        """The module's ``state_dict`` (parameters and persistent buffers, submodules included)."""
        out: dict[str, torch.Tensor] = {}
        _collect(self, "", out)
        return out

    def submodules(self) -> dict[str, "PersistentObject"]:
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if isinstance(v, PersistentObject)}


def _collect(obj: PersistentObject, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = obj.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for key in ("_parameters", "_buffers"):
        for name, value in (state.get(key) or {}).items():
            if value is None or (key == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise WeightsError(f"{prefix}{name} is not a tensor")
            out[prefix + name] = value
    for name, sub in (state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, PersistentObject):
            raise WeightsError(f"{prefix}{name} is not a persistent module")
        _collect(sub, f"{prefix}{name}.", out)


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts as dicts, recursively (init kwargs)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- the allowed globals, each ganforge's own function ----------------------------------------------

def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("a persistent object without a class name")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("a persistent object whose state is not a dict")
    src = meta.get("module_src") or ""
    digest = hashlib.sha256(src.encode("utf-8", "replace")).hexdigest() if isinstance(src, str) else ""
    return PersistentObject(class_name=meta["class_name"], init_args=tuple(_plain(state.get("_init_args") or ())),
                            init_kwargs=_plain(dict(state.get("_init_kwargs") or {})), state=dict(state),
                            source_sha256=digest)


def _load_from_bytes(data: Any) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a storage that is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("a storage record that holds something else")
    return storage


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("a tensor without a storage")
    if backward_hooks:
        raise pickle.UnpicklingError("a tensor with backward hooks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(storage, int(offset), tuple(int(s) for s in size),
                                               tuple(int(s) for s in stride), False, collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise pickle.UnpicklingError("a parameter that is not a plain tensor")
    return data  # a plain tensor: only its values are used


class _DType:
    """``numpy.dtype`` as data: a numeric code and byte order (numpy's own __setstate__ never runs)."""

    _CODES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if code not in self._CODES:
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a numeric scalar type")
        self.code, self.order = code, "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = "<" if state[1] in ("|", "=") else state[1]


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, _DType) or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a numpy scalar that is not a plain number")
    return np.frombuffer(bytes(data), dtype=np.dtype(dtype.order + dtype.code), count=1)[0]


def _set(items: Any = ()) -> set:
    return set(items)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): _set,
    ("__builtin__", "set"): _set,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("numpy", "dtype"): _DType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors, plain containers and persistent objects as data; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id (not a network pickle written by pickle.dump)")


def read_official_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level dict of an official network pickle, every module a :class:`PersistentObject`.
    Any file that is not one (another global, a payload, truncated, not a pickle) is one WeightsError line."""
    try:
        with open(path, "rb") as f:
            data = RestrictedUnpickler(f).load()
    except RefusedGlobal as exc:
        raise WeightsError(f"{path}: refused: the pickle asks for {exc.qualname}, which is not a tensor, a plain "
                           f"container or a StyleGAN network record; ganforge never runs code from a pickle") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # truncated, corrupt, not a pickle, a bad record
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsError(f"cannot read {path} as a StyleGAN network pickle (truncated, corrupt or another "
                           f"format): {type(exc).__name__}: {first}".rstrip(": ")) from None
    if not isinstance(data, dict) or not any(isinstance(v, PersistentObject) for v in data.values()):
        raise WeightsError(f"{path} is a pickle but not a StyleGAN network pickle (no G / G_ema network in it)")
    return data

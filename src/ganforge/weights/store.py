"""The weights store: the one way ganforge finds, downloads, checks and loads a named weights file.

Resolution order for a file: ``GANFORGE_WEIGHTS_DIR`` (by file name) -> the cache
(``$GANFORGE_HOME/weights``) -> download from the official URL with a progress bar, into a
temporary file that is checked against its sha256 before it is renamed into the cache.
The named files themselves are data, in ``weights/catalog.py``. Files are only ever loaded with ``safetensors`` or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from .. import paths
from ..download import download_verified, sha256_file
from ..errors import WeightsError
from ..registry import Registry


@dataclass(frozen=True)
class WeightsEntry:
    """Everything needed to get a weights file and use it correctly."""

    name: str
    filename: str
    url: str | None
    sha256: str  # full hex digest, or a documented prefix (>= 8 hex chars) where only that is published
    licence: str
    architecture: str
    normalisation: str  # what input the network expects, in words
    description: str = ""
    size: int | None = None
    expected_missing: tuple[str, ...] = field(default=())  # keys a model may lack in this file

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


WEIGHTS: Registry[WeightsEntry] = Registry("weights")


def register_weights(entry: WeightsEntry) -> WeightsEntry:
    return WEIGHTS.register(entry.name, entry)


def _matches(entry: WeightsEntry, digest: str) -> bool:
    return digest.startswith(entry.sha256.lower())


def _candidates(entry: WeightsEntry) -> Iterable[Path]:
    env = paths.weights_dir()
    if env is not None:
        yield env / entry.filename
    yield paths.home() / "weights" / entry.filename


def _missing_message(entry: WeightsEntry) -> str:
    if entry.url:
        fix = (f"run `ganforge weights fetch {entry.name}` (downloads {entry.url}), or put {entry.filename} "
               f"in a folder and set GANFORGE_WEIGHTS_DIR to it")
    else:
        fix = (f"it has no public download (a converted file, see docs/style.md): put {entry.filename} in a "
               f"folder and set GANFORGE_WEIGHTS_DIR to it")
    offline = " (GANFORGE_OFFLINE=1: nothing is downloaded)" if offline_mode() else ""
    return (
        f"weights {entry.name!r} not found{offline}: file {entry.filename} is not in GANFORGE_WEIGHTS_DIR "
        f"({paths.weights_dir() or 'unset'}) or the cache ({paths.home() / 'weights'}); {fix}"
    )


def offline_mode() -> bool:
    return os.environ.get("GANFORGE_OFFLINE") == "1"


def find(name_or_path: str | os.PathLike) -> Path | None:
    """The local path of a registered weights file (or an explicit path), without downloading."""
    if Path(name_or_path).suffix and Path(name_or_path).exists():
        return Path(name_or_path)
    entry = WEIGHTS.get(str(name_or_path))
    return next((p for p in _candidates(entry) if p.is_file()), None)


def resolve(name_or_path: str | os.PathLike, *, download: bool = True, verify: bool = True) -> Path:
    """Return a verified local file for a registered name (or an existing path, returned as is)."""
    candidate = Path(name_or_path)
    if candidate.suffix and candidate.exists():
        return candidate
    entry = WEIGHTS.get(str(name_or_path))
    path = find(entry.name)
    if path is None:
        if not download or entry.url is None or offline_mode():
            raise WeightsError(_missing_message(entry))
        path = fetch(entry.name)
    elif verify:
        check(entry, path)
    return path


def pin_path(entry: WeightsEntry) -> Path:
    """Where the sha256 of the first good download of an entry without a published checksum is
    kept (trust on first use): ``$GANFORGE_HOME/pins/NAME.sha256``. Deleting it re-pins."""
    return paths.home() / "pins" / f"{entry.name}.sha256"


def pinned(entry: WeightsEntry) -> str | None:
    """The pinned sha256 of an entry, or None."""
    try:
        text = pin_path(entry).read_text().strip().lower()
    except OSError:
        return None
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def _pin(entry: WeightsEntry, digest: str) -> None:
    path = pin_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(digest + "\n")
    tmp.replace(path)


def _pin_mismatch(entry: WeightsEntry, what: str, digest: str, pin: str) -> str:
    return (f"{what} has sha256 {digest[:16]}…, but weights {entry.name!r} are pinned to {pin[:16]}… (the first "
            f"download, recorded in {pin_path(entry)}): the file changed upstream or was tampered with; if you "
            f"trust the new file, remove the pin with `ganforge weights unpin {entry.name}`")


def check(entry: WeightsEntry, path: Path) -> None:
    if not entry.sha256:  # nothing published: check against the pin of the first download, if any
        pin = pinned(entry)
        if pin is None:
            warnings.warn(f"weights {entry.name!r}: no published sha256, only the key/shape layout is checked",
                          stacklevel=2)
            return
        digest = sha256_file(path)
        if digest != pin:
            raise WeightsError(_pin_mismatch(entry, f"{path}", digest, pin))
        return
    digest = sha256_file(path)
    if not _matches(entry, digest):
        raise WeightsError(
            f"weights {entry.name!r} at {path} fail the sha256 check (got {digest[:16]}…, expected "
            f"{entry.sha256[:16]}…): the file is corrupt or a different file; delete it and fetch again"
        )


def fetch(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Download a registered file into the cache, with progress and sha256 check. A file that fails
    the check is not kept (nothing appears in the cache). Where upstream publishes no sha256, the
    first good download is pinned (:func:`pin_path`) and a later download must match it. With
    ``GANFORGE_OFFLINE=1`` nothing is downloaded: no network attempt is made at all."""
    entry = WEIGHTS.get(name)
    target = paths.home() / "weights" / entry.filename
    if target.is_file() and not force:
        check(entry, target)
        return target
    if entry.url is None:
        raise WeightsError(_missing_message(entry))
    if offline_mode():
        raise WeightsError(f"GANFORGE_OFFLINE=1: nothing is downloaded; weights {entry.name!r} are the file "
                           f"{entry.filename} from {entry.url}: download it elsewhere and put it in a folder named "
                           f"by GANFORGE_WEIGHTS_DIR (now {paths.weights_dir() or 'unset'}), or unset GANFORGE_OFFLINE")
    recent = _FAILED.get(entry.url)
    if recent is not None and not force and _clock() - recent[0] < FAILED_DOWNLOAD_TTL:
        raise WeightsError(recent[1])  # failed moments ago: not again for every request
    return _download(entry, target, progress)


# url -> (when, message) of a download that could not reach its file in this process: repeated
# requests (a server, a batch) fail fast with the same line instead of retrying the network each time
FAILED_DOWNLOAD_TTL = 300.0
_FAILED: dict[str, tuple[float, str]] = {}
_clock = time.monotonic


def _download(entry: WeightsEntry, target: Path, progress: bool) -> Path:
    pin = None if entry.sha256 else pinned(entry)

    def accept(digest: str) -> bool:
        return _matches(entry, digest) if entry.sha256 else (pin is None or digest == pin)

    try:
        digest = download_verified(entry.url, paths.cache_dir("weights") / entry.filename, accept,
                                   desc=entry.filename, progress=progress)
    except (OSError, ValueError) as exc:  # no network, HTTP error, refused URL
        reason = getattr(exc, "reason", None) or exc
        message = f"could not download {entry.url} ({reason}); {_missing_message(entry)}"
        _FAILED[entry.url] = (_clock(), message)
        raise WeightsError(message) from exc
    if not entry.sha256:
        if pin is not None and digest != pin:
            raise WeightsError(_pin_mismatch(entry, f"the download of {entry.url}", digest, pin) + "; nothing was saved")
        if pin is None:
            _pin(entry, digest)
        return target
    if not _matches(entry, digest):
        raise WeightsError(f"download of {entry.url} fails the sha256 check (got {digest[:16]}…, expected "
                           f"{entry.sha256[:16]}…); nothing was saved")
    return target


def unpin(name: str) -> bool:
    """Remove the pin of a registered file (the next download pins again); False if it had none."""
    path = pin_path(WEIGHTS.get(name))
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def unsafe_pickle_error(path: str | os.PathLike) -> WeightsError:
    """The one line for a pickle that asks to run code or holds non-tensor objects."""
    return WeightsError(f"{path} is not a plain weights file (it asks to run code or holds objects that are not "
                        f"tensors); ganforge never unpickles code — convert it to safetensors")


def torch_load_weights(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` of a pickle; one that would need arbitrary objects (a
    ``__reduce__`` payload, a pickled class) is refused in one line, never with torch's advice to
    pass ``weights_only=False``. Other errors (truncated, not a pickle) propagate."""
    import pickle

    try:
        with warnings.catch_warnings():  # "Detected pickle protocol N": noise about a file refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).lower()
        if any(mark in text for mark in _ASKS_FOR_OBJECTS):
            raise unsafe_pickle_error(path) from None
        # torch's own message (not a pickle at all, truncated) would suggest weights_only=False
        raise WeightsError(f"cannot read weights file {path}: not a weights file (truncated, corrupt or "
                           f"another format)") from None


# what torch's weights-only unpickler says when a pickle asks for a global, a call or an object
_ASKS_FOR_OBJECTS = ("global", "call reduce", "can only create new object", "can only build", "must be imported")


def read_error(path: str | os.PathLike, exc: BaseException) -> WeightsError:
    """A one-line WeightsError for a weights file that could not be read."""
    if isinstance(exc, WeightsError):
        return exc
    lines = str(exc).strip().splitlines()
    return WeightsError(f"cannot read weights file {path}: {type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "))


def load_state_dict(name_or_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load tensors safely: safetensors, or a ``torch.load(weights_only=True)`` pickle."""
    path = resolve(name_or_path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch_load_weights(path)
    except Exception as exc:  # truncated, not a weights file, or an unsafe pickle
        raise read_error(path, exc) from (None if isinstance(exc, WeightsError) else exc)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a flat dict of tensors")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], *, source: str,
              allowed_missing: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``module``; any unexpected key or a missing key not explicitly allowed is an
    error (never a silent partial load)."""
    own = module.state_dict()
    allowed = set(allowed_missing)
    missing = [k for k in own if k not in state and k not in allowed]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not fit {type(module).__name__}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''}"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise WeightsError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    module.load_state_dict(state, strict=False)

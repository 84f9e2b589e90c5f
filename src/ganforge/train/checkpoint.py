"""Checkpoints that resume exactly and survive being killed mid-write.

A checkpoint is a directory ``checkpoints/step-NNNNNNN/`` holding ``weights.safetensors`` (every
module's state, keys prefixed ``<module>.``) and ``state.pt`` (optimisers, schedulers, RNG states,
counters; readable with ``torch.load(weights_only=True)``). It is written under a temporary name and
renamed into place, so a directory with the final name is always complete; a crash leaves at
most a ``.tmp-*`` directory, which is ignored and cleaned up.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, os_error_reason
from ..weights.store import torch_load_weights

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:07d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def module_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().cpu().contiguous().clone()
            for name, m in modules.items() for k, v in m.state_dict().items()}


def save(root: Path, step: int, modules: dict[str, nn.Module], state: dict[str, Any], *,
         keep: int = 3, name: str | None = None) -> Path:
    """Write a checkpoint atomically and keep only the newest ``keep`` step directories.

    A failed write (disk full, permission denied, read-only file system...) removes its temporary
    directory, leaves every earlier checkpoint as it was and raises a one-line CheckpointError."""
    final = root / name if name else step_dir(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    old = root / f".old-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(module_tensors(modules), str(tmp / WEIGHTS_FILE), metadata={"step": str(step)})
        torch.save({**state, "step": step}, tmp / STATE_FILE)
        # safetensors writes 0600, torch.save the umask's default: every file gets the latter
        mode = (tmp / STATE_FILE).stat().st_mode & 0o777
        for f in tmp.iterdir():
            os.chmod(f, mode)
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _fsync_dir(root)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            old.rename(final)  # a failed swap of 'best': the previous one stays
        if isinstance(exc, CheckpointError):
            raise
        reason = os_error_reason(exc)
        if reason is None and not isinstance(exc, OSError) and type(exc).__name__ != "SafetensorError":
            if not (isinstance(exc, RuntimeError) and _disk_full(root)):
                raise  # not a write failure: a bug, shown as one
            reason = "no space left on device"
        raise CheckpointError(_write_failure(reason or str(exc).strip().splitlines()[0], root, step, name)) from exc
    if name is None and keep > 0:
        for stale in list_checkpoints(root)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _disk_full(root: Path) -> bool:
    """torch.save reports a full disk only as 'file write failed': ask the file system."""
    try:
        return shutil.disk_usage(root).free < 1 << 20
    except OSError:
        return False


def _write_failure(reason: str, root: Path, step: int, name: str | None) -> str:
    what = f"checkpoint {name!r} (step {step})" if name else f"checkpoint step {step}"
    previous = list_checkpoints(root)
    kept = f"the previous checkpoint step {int(previous[-1].name[5:])} is intact" if previous \
        else "no earlier checkpoint exists"
    return f"{reason} while writing {what} to {root}; {kept}"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small file (run.json, config.json) so that readers see the old or the new
    content, never a torn one."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Readers see the old or the new file, never a torn one: a temporary file in the same
    folder, fsync, then os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_checkpoints(root: Path) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()
             and (p / WEIGHTS_FILE).is_file() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]))  # by number: step-10000000 after step-9999999


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read one checkpoint directory; a truncated or foreign file is a one-line CheckpointError."""
    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
        state = torch_load_weights(path / STATE_FILE)
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete: {exc.filename} is missing") from exc
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt): {type(exc).__name__}: {first}") from exc
    return tensors, state


def load_latest(root: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint that actually loads; broken newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(root)):
        try:
            tensors, state = load(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=2)
            continue
        return path, tensors, state
    return None


def restore_modules(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load every module strictly from prefixed tensors."""
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint {source} does not match network {name!r}: {first}") from exc


def clean_temporaries(root: Path) -> None:
    if root.is_dir():
        for p in root.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)

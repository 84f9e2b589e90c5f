"""``--device`` and ``--precision`` for every command that runs a network, resolved one way.

- device ``auto``: the first CUDA GPU when one is available, else the CPU; ``cpu``; ``cuda``;
  ``cuda:N``.
- precision ``auto``: bf16 autocast where the hardware runs it natively (recent GPUs, CPUs with
  AVX512-BF16/AMX), else fp32 (the training loop's rule, :func:`ganforge.train.loop.resolve_precision`).
"""

from __future__ import annotations

import torch

from .errors import GanforgeError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise GanforgeError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GanforgeError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise GanforgeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return resolved


def accelerate_cpu_flag(device: str | None = "auto") -> bool | None:
    """What ``Accelerator(cpu=...)`` needs for ``--device``: None for auto (Accelerate decides), True
    for cpu, False for cuda. Accelerate (and torchrun) place processes on GPUs themselves, so
    ``cuda:N`` is only accepted for N = 0; pick GPUs with CUDA_VISIBLE_DEVICES."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return None
    if name == "cpu":
        return True
    if name in ("cuda", "cuda:0"):
        resolve_device(name)  # a clear error when there is no GPU
        return False
    raise GanforgeError(f"--device {name}: training places processes on GPUs through Accelerate; use "
                        f"--device cuda with CUDA_VISIBLE_DEVICES={name.partition(':')[2]} instead")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' or 'fp32' for this device; others are checked and returned."""
    if precision not in PRECISIONS:
        raise GanforgeError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise GanforgeError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU")
    from .train.loop import resolve_precision as _loop_rule

    return _loop_rule(precision, device)


def autocast(precision: str, device: torch.device):
    """The autocast context for a resolved precision (a no-op context for fp32)."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

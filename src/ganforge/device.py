"""``--device`` and ``--precision`` for every command that runs a network, resolved one way.

- device ``auto``: the first CUDA GPU when one is available, else the CPU; ``cpu``; ``cuda``;
  ``cuda:N``.
- precision ``auto``: bf16 autocast where the hardware runs it natively (recent GPUs, CPUs with
  AVX512-BF16/AMX), else fp32; ``fp32``; ``bf16``; ``fp16`` (CUDA only: a one-line refusal elsewhere).
- :func:`autocast` gives the context for a resolved precision.

This module is the only place that decides these: the training loop, the stylizer, the
translator, the upscaler, the inpainter, the server and every CLI command call it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GanforgeError

if TYPE_CHECKING:  # torch is imported where it is used, so the CLI can name PRECISIONS cheaply
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    import torch

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


def cpu_has_native_bf16() -> bool:
    """True on CPUs that run bf16 matrix work natively (AVX512-BF16 or AMX); elsewhere bf16
    autocast is emulated and about 15x slower than fp32."""
    import torch

    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        flags = Path("/proc/cpuinfo").read_text()
    except (OSError, RuntimeError, AttributeError):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line error."""
    if precision not in PRECISIONS:
        raise GanforgeError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where the hardware runs it natively (recent GPUs; CPUs with AVX512-BF16/AMX,
    where it is 1.7x faster for GAN training), else fp32. Others are checked and returned; fp16
    needs a CUDA GPU (the CPU has no fp16 autocast worth running)."""
    import torch

    check_precision(precision)
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise GanforgeError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    """The autocast context for a resolved precision (a no-op context for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise GanforgeError(f"autocast needs a resolved precision (fp32, bf16 or fp16), got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=dtypes[precision])

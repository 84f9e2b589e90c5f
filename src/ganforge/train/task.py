"""The contract between the generic training loop and a task (GAN, translator, style decoder).

A task builds its networks and optimisers from its options, and implements ``step``: one
training iteration, using ``ctx`` for everything that depends on time, device or precision
(next batch, random numbers, autocast, backward + gradient sync + NaN guard + optimiser step).
The loop never looks inside a task's networks; it saves ``modules()`` as safetensors and
``optimizers()`` plus ``extra_state()`` in the checkpoint state file.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


class StepContext(Protocol):
    """What the loop gives a task at every step (implemented by ``context.RunContext``)."""

    step: int  # number of completed steps before this one
    device: torch.device
    generator: torch.Generator  # the run's checkpointed RNG: use it for *all* randomness

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next batch as named tensors on the device, as the run's batch source makes them
        (see ``batches.py``): e.g. ``{"image": float in [-1, 1], "label": int64}`` for a GAN,
        ``{"A": ..., "B": ...}`` for paired or unpaired image-to-image data."""

    def autocast(self) -> Any:
        """Context manager for the run's mixed precision (a no-op in fp32)."""

    def optimize(self, loss: torch.Tensor, optimizer: str, modules: list[nn.Module]) -> bool:
        """Backward ``loss``, average gradients of ``modules`` across processes, clip, and step the
        named optimiser. Returns False (and skips the update, counting it) if the loss or a gradient
        is not finite."""

    def randn(self, *shape: int) -> torch.Tensor:
        """Normal noise on the device from the run's generator."""


class Task(Protocol):
    name: str

    def modules(self) -> dict[str, nn.Module]:
        """Every network whose weights are saved, by name (e.g. G, D, G_ema)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name; the loop attaches LR schedulers and checkpoints them."""

    def step(self, ctx: StepContext) -> dict[str, float]:
        """One training iteration; returns scalars to log (losses, D outputs, ...)."""

    def snapshot(self, ctx: StepContext) -> torch.Tensor:
        """A grid image (C×H×W in [0, 1]) to save every ``sample_every`` steps (fixed inputs)."""

    def extra_state(self) -> dict[str, Any]:
        """Tensors/numbers beyond modules and optimisers needed to resume exactly (e.g. augment p)."""

    def load_extra_state(self, state: dict[str, Any]) -> None: ...

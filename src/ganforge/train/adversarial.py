"""Building blocks shared by the adversarial image tasks (translation, super-resolution,
inpainting): the papers' initialisation, an EMA copy of a generator (from ``ema``), a discriminator frozen for
the generator's step, side-effect-free snapshots and snapshot grids, and :class:`GeneratorDiscriminatorTask`,
the Task plumbing of a task with one generator (+ EMA) and one discriminator."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn
from torchvision.utils import make_grid

from .ema import EmaCopy

__all__ = ["LOSS_SCALE", "EmaCopy", "GeneratorDiscriminatorTask", "frozen", "grid", "init_normal",
           "side_effect_free", "to_display"]


# (D scale, G scale) that turn ganforge's registered losses into the papers' exact weighting
# relative to the L1/cycle/feature terms: pix2pix halves D's BCE sum; CycleGAN's G term is
# MSE(D(G(x)), 1) where ganforge's lsgan has 0.5 x that.
LOSS_SCALE = {"non-saturating": (0.5, 1.0), "lsgan": (1.0, 2.0), "hinge": (1.0, 1.0)}


def init_normal(module: nn.Module) -> nn.Module:
    """The pix2pix/CycleGAN/SPADE papers' initialisation: N(0, 0.02) weights (BatchNorm N(1, 0.02))."""
    from ..nets.translators import init_weights

    init_weights(module, "normal", 0.02)
    return module


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradients into ``modules`` (a generator step through a fixed discriminator)."""
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)


@contextlib.contextmanager
def side_effect_free(*modules: nn.Module) -> Iterator[None]:
    """For snapshots: forward passes that leave every buffer (BatchNorm running statistics, spectral
    norm's power-iteration vectors) and torch's RNG (which dropout uses and the loop checkpoints)
    exactly as they were, so a snapshot never changes the training trajectory."""
    saved = [[(b, b.clone()) for b in m.buffers()] for m in modules]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            yield
        finally:
            for pairs in saved:
                for buffer, value in pairs:
                    buffer.copy_(value)


def to_display(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (1 or 3 channels) -> 3-channel [0, 1] on the CPU, for grids."""
    x = x.detach().float().add(1).div(2).clamp(0, 1).cpu()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def grid(columns: list[torch.Tensor]) -> torch.Tensor:
    """Rows of examples, one column per tensor (all N×3×H×W in [0, 1])."""
    tiles = torch.stack(columns, 1).flatten(0, 1)
    return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


class GeneratorDiscriminatorTask:
    """``modules()`` (G, D and G_ema when EMA is on), ``optimizers()`` and no extra state, for a task
    that sets ``self.G``, ``self.D``, ``self.ema`` (an :class:`EmaCopy`) and ``self.opt``."""

    G: nn.Module
    D: nn.Module
    ema: EmaCopy
    opt: dict[str, torch.optim.Optimizer]

    def modules(self) -> dict[str, nn.Module]:
        out = {"G": self.G, "D": self.D}
        if self.ema.copy is not None:
            out["G_ema"] = self.ema.copy
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

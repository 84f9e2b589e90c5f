"""The exponential moving average of a generator's weights, one implementation for every task
(the GAN families in ``train/gan.py``, the adversarial image tasks through :class:`EmaCopy`)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """The decay used at ``step``: ``decay`` after a warm-up in which the average follows the
    generator closely ((1 + step) / (10 + step))."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """``ema``'s parameters move towards ``model``'s (lerp by 1 - :func:`ema_decay`); its buffers
    (BatchNorm statistics, ...) are copied."""
    beta = ema_decay(decay, step)
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - beta)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))  # one op, not one per buffer


class EmaCopy:
    """An EMA copy of a generator (off when decay is 0)."""

    def __init__(self, G: nn.Module, decay: float) -> None:
        self.decay = decay
        self.copy = copy.deepcopy(G).eval().requires_grad_(False) if decay > 0 else None

    def update(self, G: nn.Module, step: int) -> None:
        if self.copy is not None:
            ema_update(self.copy, G, self.decay, step)

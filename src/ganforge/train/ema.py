"""The exponential moving average of a generator's weights, one implementation for every task
(the GAN families in ``train/gan.py``, the adversarial image tasks through :class:`EmaCopy`), and
the BatchNorm statistics of such an average recomputed for its own weights."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """The decay used at ``step``: ``decay`` after a warm-up in which the average follows the
    generator closely ((1 + step) / (10 + step))."""
    return min(decay, (1 + step) / (10 + step))


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: float = 0.05) -> float:
    """StyleGAN2-ADA's EMA decay for one update of ``batch`` images: a half-life of ``ema_kimg``
    thousand images, at most ``rampup`` x the ``cur_nimg`` images seen so far (0: no ramp-up), so
    early on the average follows the generator closely and forgets its random start:
    ``beta = 0.5 ** (batch / max(min(ema_kimg * 1000, cur_nimg * rampup), 1e-8))``."""
    ema_nimg = ema_kimg * 1000
    if rampup > 0:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


class EmaPair:
    """An EMA network and the network it follows, with their parameter lists and buffer-holding
    modules gathered once (walking the module trees every step made a tiny generator's update
    ~90 us instead of ~22 us on the CPU: per-step overhead, issue 25). Parameters are the same
    objects for the modules' lives (``.to()`` swaps their data in place); buffers are read from the
    modules at each update, since ``.to()`` replaces buffer tensors and a module may register one later."""

    def __init__(self, ema: nn.Module, model: nn.Module) -> None:
        self.ema, self.model = ema, model
        self.ema_params, self.params = list(ema.parameters()), list(model.parameters())
        if len(self.ema_params) != len(self.params):
            raise ValueError(f"EMA: {len(self.ema_params)} parameters in the copy, {len(self.params)} in the network")
        self.ema_holders, self.holders = list(ema.modules()), list(model.modules())  # buffers may come later

    @staticmethod
    def _buffers(holders: list[nn.Module]) -> list[torch.Tensor]:
        return [b for m in holders for b in m._buffers.values() if b is not None]

    @torch.no_grad()
    def update(self, beta: float) -> None:
        """Parameters lerp towards the network's by 1 - beta; buffers (BatchNorm statistics, ...) copied."""
        torch._foreach_lerp_(self.ema_params, self.params, 1.0 - beta)
        buffers = self._buffers(self.ema_holders)
        if buffers:  # one op, not one per buffer (an empty list is an error for foreach ops)
            torch._foreach_copy_(buffers, self._buffers(self.holders))


def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int, beta: float | None = None,
               pair: EmaPair | None = None) -> EmaPair:
    """``ema``'s parameters move towards ``model``'s (lerp by 1 - beta; ``beta`` defaults to the
    fixed-decay warm-up :func:`ema_decay`); its buffers (BatchNorm statistics, ...) are copied.
    Returns the :class:`EmaPair` used; pass it back as ``pair`` to skip gathering the lists again
    (a ``pair`` of other modules is not used)."""
    if pair is None or pair.ema is not ema or pair.model is not model:
        pair = EmaPair(ema, model)
    pair.update(ema_decay(decay, step) if beta is None else beta)
    return pair


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, inputs: Callable[[int], tuple], n: int = 4096, batch: int = 64) -> None:
    """Recompute ``net``'s BatchNorm running statistics for its own weights: reset, then exact
    averages (momentum None) over ceil(n / batch) forward passes of ``net(*inputs(batch))`` in
    train mode. An EMA copy needs this: :func:`ema_update` copies the trained network's statistics,
    which describe that network's activations, not the average's (on text digits the EMA G drew the
    requested digit 0.1-1.4 points more often with its own; docs/benchmarks.md). ``net`` is left
    in eval mode with its momenta as they were; nothing else (no global RNG) is touched."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    try:
        for _ in range(math.ceil(n / batch)):
            net(*inputs(batch))
    finally:
        net.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


class EmaCopy:
    """An EMA copy of a generator (off when decay is 0)."""

    def __init__(self, G: nn.Module, decay: float) -> None:
        self.decay, self._pair = decay, None
        self.copy = copy.deepcopy(G).eval().requires_grad_(False) if decay > 0 else None

    def update(self, G: nn.Module, step: int) -> None:
        if self.copy is not None:
            self._pair = ema_update(self.copy, G, self.decay, step, pair=self._pair)

"""Differentiable augmentation (Zhao et al. 2020 DiffAugment; Karras et al. 2020 ADA-style adaptive
probability). Applied to both real and fake images before D, so D never sees un-augmented data
and the augmentation does not leak into G's samples.

All randomness comes from the caller's ``torch.Generator`` so that a resumed run is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _per_sample(p: float, n: int, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) < p).to(x.dtype)


def _color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    r = lambda: torch.rand(n, 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype)  # noqa: E731
    x = x + (r() - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (r() * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (r() + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=gen)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=gen)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + ty).clamp(-1, h) + 1
    gx = (gx[None] + tx).clamp(-1, w) + 1
    padded = F.pad(x, (1, 1, 1, 1))  # zeros outside
    idx = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def _cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=gen)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((gy[None] - cy).abs() <= ch // 2) & ((gx[None] - cx).abs() <= cw // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], p: float, gen: torch.Generator) -> torch.Tensor:
    """Apply each op of ``policy`` to each sample with probability ``p`` (differentiable in x)."""
    if p <= 0 or not policy:
        return x
    for name in policy:
        keep = _per_sample(p, x.shape[0], x, gen)
        x = keep * _OPS[name](x, gen) + (1 - keep) * x
    return x


class AdaptiveAugment:
    """ADA heuristic: raise p when D is over-confident on reals (E[sign D(real)] > target)."""

    def __init__(self, p: float = 0.0, target: float | None = None, speed_images: int = 50_000,
                 interval: int = 4) -> None:
        self.p, self.target, self.speed_images, self.interval = p, target, speed_images, interval
        self._sum, self._count, self.rt = 0.0, 0, 0.0

    def observe(self, real_logits: torch.Tensor, all_reduce_sum=None) -> None:
        """Accumulate sign(D(real)). ``all_reduce_sum`` (numbers -> their sums over processes):
        every process accumulates the global statistic, so all keep the same p (and the
        accumulators saved in a checkpoint by the main process are every rank's)."""
        if self.target is None:
            return
        total, count = float(real_logits.detach().float().sign().sum()), real_logits.numel()
        if all_reduce_sum is not None:
            total, count = all_reduce_sum([total, float(count)])
        self._sum += total
        self._count += int(count)

    def update(self, step: int, batch_size: int) -> None:
        if self.target is None or self._count == 0 or (step + 1) % self.interval:
            return
        self.rt = self._sum / self._count
        delta = (1 if self.rt > self.target else -1) * batch_size * self.interval / self.speed_images
        self.p = float(min(max(self.p + delta, 0.0), 1.0))
        self._sum, self._count = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "sum": self._sum, "count": self._count, "rt": self.rt}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._sum, self._count, self.rt = state["p"], state["sum"], state["count"], state["rt"]

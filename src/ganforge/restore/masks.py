"""Hole masks for inpainting, made on the fly from the run's checkpointed generator only, so the
mask of batch k is a function of that generator's state (exact resume, like crops and flips).

Convention everywhere: ``1`` = hole (to be filled), ``0`` = known pixel.

- ``rect``: one axis-aligned rectangle, aspect ratio between 1:3 and 3:1, anywhere in the image.
- ``brush``: free-form strokes as in DeepFill v2 (Yu et al. 2019) and LaMa's "thick" masks
  (Suvorov et al. 2022): each stroke is a random walk of 2-8 vertices joined by thick line
  segments (capsules: round caps and joints), width and segment length relative to the image side.
- ``mix``: each mask is a rectangle or brush strokes with probability 1/2.

The hole covers a fraction of the image drawn uniformly from ``[min_area, max_area]``: a mask is
drawn again (from the same generator) until its area lands in that range, and after 20 misses a
rectangle of the drawn area is used, so the range always holds (to within one pixel row or column
of rounding, see :func:`hole_fraction_bounds`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import GanforgeError

MASK_KINDS = ("rect", "brush", "mix")
MAX_TRIES = 20


def check_mask_options(kind: str, min_area: float, max_area: float) -> None:
    if kind not in MASK_KINDS:
        raise GanforgeError(f"--mask-kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
    if not 0 < min_area <= max_area < 1:
        raise GanforgeError(f"hole area fractions must satisfy 0 < --min-hole <= --max-hole < 1, "
                            f"got {min_area} and {max_area}")


class _Draws:
    """Uniform numbers from the run's generator, fetched in blocks (one device call per block, not
    one per number); the sequence is a pure function of the generator's state."""

    def __init__(self, generator: torch.Generator, block: int = 256) -> None:
        self.generator, self.block = generator, block
        self.buf: list[float] = []

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if not self.buf:
            g = self.generator
            self.buf = torch.rand(self.block, generator=g, device=g.device, dtype=torch.float64).tolist()[::-1]
        return lo + (hi - lo) * self.buf.pop()


def _rect(h: int, w: int, area: float, u: _Draws) -> np.ndarray:
    """A rectangle of about ``area`` × H × W pixels, random aspect ratio and position."""
    target = area * h * w
    ratio = math.exp(u(-math.log(3.0), math.log(3.0)))  # height / width
    rh = int(min(h, max(1, round(math.sqrt(target * ratio)))))
    rw = int(min(w, max(1, round(target / rh))))
    rh = int(min(h, max(1, round(target / rw))))  # refit after clamping the width
    y = int(u() * (h - rh + 1))
    x = int(u() * (w - rw + 1))
    m = np.zeros((h, w), np.bool_)
    m[min(y, h - rh):min(y, h - rh) + rh, min(x, w - rw):min(x, w - rw) + rw] = True
    return m


def _segment(m: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float) -> None:
    """Set every pixel centre within ``radius`` of the segment p0-p1 (a capsule), in place."""
    h, w = m.shape
    (y0, x0), (y1, x1) = p0, p1
    ylo, yhi = max(0, int(math.floor(min(y0, y1) - radius))), min(h, int(math.ceil(max(y0, y1) + radius)) + 1)
    xlo, xhi = max(0, int(math.floor(min(x0, x1) - radius))), min(w, int(math.ceil(max(x0, x1) + radius)) + 1)
    if ylo >= yhi or xlo >= xhi:
        return
    yy, xx = np.mgrid[ylo:yhi, xlo:xhi].astype(np.float64) + 0.5
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    t = np.zeros_like(yy) if length2 == 0 else np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0.0, 1.0)
    dist2 = (yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2
    m[ylo:yhi, xlo:xhi] |= dist2 <= radius * radius


def _brush(h: int, w: int, area: float, u: _Draws) -> np.ndarray:
    """Random-walk strokes of thick segments, added until the hole reaches ``area`` of the image."""
    side = min(h, w)
    m = np.zeros((h, w), np.bool_)
    target = area * h * w
    for _ in range(12):  # strokes
        width = u(0.06, 0.2) * side  # DeepFill v2: brush width 12-40 px at 256 px
        y, x = u(0, h), u(0, w)
        angle = u(0, 2 * math.pi)
        for _ in range(int(u(2, 9))):  # vertices
            angle += u(-math.pi / 2, math.pi / 2)  # a walk that bends, not a straight line
            length = u(0.1, 0.35) * side
            ny = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
            nx = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
            _segment(m, (y, x), (ny, nx), width / 2)
            y, x = ny, nx
            if m.sum() >= target:
                return m
    return m


def _one(h: int, w: int, kind: str, min_area: float, max_area: float, u: _Draws) -> np.ndarray:
    area = u(min_area, max_area)
    use = kind if kind != "mix" else ("rect" if u() < 0.5 else "brush")
    for _ in range(MAX_TRIES):
        m = _rect(h, w, area, u) if use == "rect" else _brush(h, w, area, u)
        if min_area <= m.mean() <= max_area:
            return m
    return _rect(h, w, area, u)


def hole_fraction_bounds(h: int, w: int, min_area: float, max_area: float) -> tuple[float, float]:
    """The hole fractions a mask of H×W is guaranteed to lie in: [min_area, max_area], widened by
    the rounding of a rectangle's sides to whole pixels (one row or column)."""
    slack = (max(h, w) + 1) / (h * w)
    return max(0.0, min_area - slack), min(1.0, max_area + slack)


def make_masks(n: int, h: int, w: int, generator: torch.Generator, *, kind: str = "mix", min_area: float = 0.1,
               max_area: float = 0.4, device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` hole masks (float N×1×H×W, 1 = hole) drawn from ``generator`` only."""
    check_mask_options(kind, min_area, max_area)
    u = _Draws(generator)
    masks = np.stack([_one(h, w, kind, min_area, max_area, u) for _ in range(n)])
    out = torch.from_numpy(masks.astype(np.float32))[:, None]
    return out.to(device if device is not None else generator.device)

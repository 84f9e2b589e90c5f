"""An invisible watermark for the images ganforge writes: 64 known bits, keyed quantisation index
modulation (QIM) of smooth per-block projections of the luma, on a grid relative to the image's size.

Why this design (and not ``invisible-watermark``'s DWT-DCT): the mark must live in images from 32
to 1024 pixels and survive what images go through (JPEG, a resize, WebP, a crop). So
- the grid is 16 × 16 blocks whatever the size, so a resize maps blocks onto blocks;
- each block carries one number, its projection on a half-cosine across the block (horizontal or
  vertical, keyed): a smooth, low-frequency feature that JPEG, WebP and resampling keep, and that
  is measured on many pixels at once at large sizes;
- QIM (the projection moved to the nearest point of a dithered lattice that encodes the bit)
  cancels the image itself at decoding time, so 32-pixel images decode exactly at PSNR > 40 dB;
- each bit is spread over four blocks across the image, decoded softly;
- a crop moves the grid: the detector searches crop hypotheses (up to :data:`MAX_CROP` of each
  side) and keeps the best, with the p-value corrected for the number of hypotheses tried.
The bits are known (derived from :data:`KEY`), so detection is a test: the share of bits right and
its binomial p-value (Bonferroni-corrected).

Pure NumPy; the image is modified in luma only (the same change on R, G and B), with saturated
pixels handled by re-projecting the remaining change onto the pixels that can still move.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

KEY = "ganforge-watermark-v1"
BITS = 32
GRID = 16
MIN_SIZE = 2 * GRID  # smaller images (blocks under 2 px) are left unmarked
STEPS = (9.0, 8.0)  # QIM lattice steps in 8-bit luma units (per-pixel MSE step^2 / 24: ~42.5 dB); the
# smaller one for images with large saturated areas (MNIST's black background), where only one half
# of a block's pattern can move and the change costs twice the energy (~41 dB with it)
SATURATED = 0.3  # share of pixels at 0 or 255 above which the smaller step is used
MAX_CROP = 0.12  # the detector searches crops of up to this share of each side
THRESHOLD = 1e-4  # detected when the corrected p-value is below this
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Detection:
    detected: bool
    bit_accuracy: float
    p_value: float

    def as_dict(self) -> dict:
        return {"detected": self.detected, "bit_accuracy": round(self.bit_accuracy, 4), "p_value": self.p_value}


def step_for(luma: np.ndarray) -> float:
    """The lattice step of an image: the smaller one when much of it is saturated."""
    return STEPS[1] if float(((luma <= 0.5) | (luma >= 254.5)).mean()) > SATURATED else STEPS[0]


def _keyed(key: str = KEY, step: float = STEPS[0]):
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 2, BITS)
    blocks = GRID * GRID
    bit_of = rng.permutation(np.arange(blocks) % BITS)  # each bit in blocks // BITS blocks, spread out
    dither = rng.uniform(0, 1, blocks)  # in lattice steps
    vertical = rng.integers(0, 2, blocks).astype(bool)
    return payload, bit_of, dither, vertical, step


def _edges(n: int, size: float, offset: float = 0.0) -> np.ndarray:
    """Block edges along an axis of ``size`` (in original pixels) starting at ``offset``."""
    return offset + size * np.arange(GRID + 1) / GRID


def _luma(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) @ LUMA if arr.ndim == 3 else arr.astype(np.float64)


def _patterns(h: int, w: int, ys: np.ndarray, xs: np.ndarray, vertical: np.ndarray):
    """For each block: its pixel slice and its half-cosine pattern (unit mean square)."""
    out = []
    for by in range(GRID):
        y0, y1 = int(round(ys[by])), int(round(ys[by + 1]))
        for bx in range(GRID):
            x0, x1 = int(round(xs[bx])), int(round(xs[bx + 1]))
            y0c, y1c, x0c, x1c = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
            if y1c - y0c < 1 or x1c - x0c < 1 or (y1 - y0) < 1 or (x1 - x0) < 1:
                out.append(None)
                continue
            b = by * GRID + bx
            if vertical[b]:
                n, t = y1 - y0, (np.arange(y0c, y1c) - y0 + 0.5)
                p = np.cos(np.pi * t / n)[:, None] * np.ones((1, x1c - x0c))
            else:
                n, t = x1 - x0, (np.arange(x0c, x1c) - x0 + 0.5)
                p = np.ones((y1c - y0c, 1)) * np.cos(np.pi * t / n)[None, :]
            out.append((slice(y0c, y1c), slice(x0c, x1c), p))
    return out


def embed(image: np.ndarray, key: str = KEY, iterations: int = 4) -> np.ndarray:
    """``image`` (uint8, H×W or H×W×C) with the mark; same shape and dtype. Images smaller than
    :data:`MIN_SIZE` (32 px) a side are returned unchanged."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError("embed takes 8-bit images")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIZE:
        return arr.copy()
    work = arr.astype(np.float64)
    payload, bit_of, dither, vertical, step = _keyed(key, step_for(_luma(work)))
    blocks = _patterns(h, w, _edges(h, h), _edges(w, w), vertical)
    delta = np.zeros((h, w))
    base = _luma(work)
    for _ in range(iterations):
        y = np.clip(base + delta, 0, 255)
        moved = False
        for b, blk in enumerate(blocks):
            if blk is None:
                continue
            sy, sx, p = blk
            f = float((y[sy, sx] * p).sum() / (p * p).sum())
            offset = (dither[b] + 0.5 * payload[bit_of[b]]) * step
            target = np.round((f - offset) / step) * step + offset
            need = target - f
            if abs(need) < 1e-3:
                continue
            # only pixels that can move the projection the needed way (not pinned at 0 or 255)
            cur = base[sy, sx] + delta[sy, sx]
            up = np.sign(need) * p > 0
            free = np.where(up, cur < 255, cur > 0) | (p == 0)
            q = np.where(free, p, 0.0)
            denom = (q * p).sum()
            if denom <= 1e-9:
                continue
            delta[sy, sx] += need * q * (p * p).sum() / denom
            moved = True
        if not moved:
            break
    out = work + delta[..., None] if arr.ndim == 3 else work + delta
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _axis(n_pixels: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one axis: the block indicator (GRID × n), the half-cosine of each block (GRID × n), and
    each block's full length (the pattern's period is the whole block, inside the image or not)."""
    ind = np.zeros((GRID, n_pixels))
    cos = np.zeros((GRID, n_pixels))
    length = np.zeros(GRID)
    for i in range(GRID):
        a, b = int(round(edges[i])), int(round(edges[i + 1]))
        length[i] = b - a
        lo, hi = max(a, 0), min(b, n_pixels)
        if b - a >= 1 and hi > lo:
            t = np.arange(lo, hi) - a + 0.5
            ind[i, lo:hi] = 1.0
            cos[i, lo:hi] = np.cos(np.pi * t / (b - a))
    return ind, cos, length


def _features(y: np.ndarray, ys: np.ndarray, xs: np.ndarray, vertical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every block's projection on its pattern (GRID*GRID) and whether the block is in the image."""
    h, w = y.shape
    ry, cy, _ = _axis(h, ys)
    rx, cx, _ = _axis(w, xs)
    fh = ry @ y @ cx.T  # horizontal half-cosines
    fv = cy @ y @ rx.T  # vertical ones
    ph = ry.sum(1)[:, None] * (cx ** 2).sum(1)[None, :]
    pv = (cy ** 2).sum(1)[:, None] * rx.sum(1)[None, :]
    num = np.where(vertical.reshape(GRID, GRID), fv, fh).ravel()
    den = np.where(vertical.reshape(GRID, GRID), pv, ph).ravel()
    ok = den > 0.25 * np.median(den[den > 0]) if (den > 0).any() else den > 0  # mostly-cut blocks are skipped
    return np.where(ok, num / np.maximum(den, 1e-9), 0.0), ok


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the chance of k or more of n bits right by luck."""
    return float(sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n)


def _votes(y: np.ndarray, ys: np.ndarray, xs: np.ndarray, keyed) -> tuple[np.ndarray, np.ndarray]:
    payload, bit_of, dither, vertical, step = keyed
    f, ok = _features(y, ys, xs, vertical)
    soft = np.where(ok, np.cos(2 * np.pi * ((f / step - dither) % 1.0)), 0.0)  # +1: bit 0, -1: bit 1
    votes = np.bincount(bit_of, weights=soft, minlength=BITS)
    counts = np.bincount(bit_of, weights=ok.astype(float), minlength=BITS)
    return votes, counts


def _cos_rows(n_pixels: int, lo_px: float, span: float) -> np.ndarray:
    """The half-cosine of each block (GRID × n) of a grid starting at ``lo_px`` spanning ``span``."""
    return _axis(n_pixels, lo_px + span * np.arange(GRID + 1) / GRID)[1]


def _axis_score(proj, counts, n_pixels, a, b, mine, dith, sign_b, transpose, step) -> float:
    c = _cos_rows(n_pixels, -a, n_pixels + a + b)
    f = proj @ c.T  # other axis × this axis
    den = counts[:, None] * (c ** 2).sum(1)[None, :]
    if transpose:
        f, den = f.T, den.T
    ok = ((den > 0.25 * np.median(den[den > 0])) if (den > 0).any() else den > 0) & mine
    soft = np.where(ok, np.cos(2 * np.pi * ((f / np.maximum(den, 1e-9) / step - dith) % 1.0)), 0.0)
    return float((soft * sign_b).sum() / max(ok.sum(), 1))


def _search_axis(proj: np.ndarray, counts: np.ndarray, n_pixels: int, mine: np.ndarray, keyed,
                 sign: np.ndarray, transpose: bool) -> tuple[list[tuple[float, float]], int]:
    """Three candidate cut-away amounts (before, after) in pixels along one axis that align the
    blocks whose pattern runs along it, coarse to fine; ``proj`` holds the image summed over the middle
    of each block of the other axis (GRID × n), ``counts`` those sums' pixel counts."""
    payload, bit_of, dither, _, step = keyed
    dith, sign_b = dither.reshape(GRID, GRID), sign[bit_of].reshape(GRID, GRID)
    block, top = n_pixels / GRID, MAX_CROP / (1 - MAX_CROP) * n_pixels
    coarse = max(1.0, block / 8)
    grid = np.arange(0.0, top + 1e-9, coarse)
    tried = 0
    scored = []
    for a in grid:
        for b in grid:
            scored.append((_axis_score(proj, counts, n_pixels, a, b, mine, dith, sign_b, transpose, step), a, b))
    tried += len(scored)
    scored.sort(reverse=True)
    found = []
    for sc0, a0, b0 in scored[:3]:  # refine around the three best coarse cells at one pixel
        best_score, best = sc0, (float(a0), float(b0))
        if coarse > 1.0:
            fine = np.arange(-coarse, coarse + 1e-9, 1.0)
            for da in fine:
                for db in fine:
                    a, b = a0 + da, b0 + db
                    if not (0 <= a <= top and 0 <= b <= top):
                        continue
                    tried += 1
                    sc = _axis_score(proj, counts, n_pixels, a, b, mine, dith, sign_b, transpose, step)
                    if sc > best_score:
                        best_score, best = sc, (float(a), float(b))
        found.append(best)
    return found, tried


def _detect_step(y: np.ndarray, keyed, search: bool) -> tuple[int, int, int]:
    """Bits right, bits seen and hypotheses tried for one lattice step."""
    h, w = y.shape
    payload, bit_of, dither, vertical, step = keyed
    sign = 1.0 - 2.0 * payload
    vert = vertical.reshape(GRID, GRID)

    def grid(n: int, before: float, after: float) -> np.ndarray:
        return -before + (n + before + after) * np.arange(GRID + 1) / GRID

    def decode(top: float, bottom: float, left: float, right: float) -> tuple[int, int]:
        votes, counts = _votes(y, grid(h, top, bottom), grid(w, left, right), keyed)
        seen = counts > 0
        return int(((votes < 0).astype(int)[seen] == payload[seen]).sum()), int(seen.sum())

    def soft(top: float, bottom: float, left: float, right: float) -> float:
        votes, counts = _votes(y, grid(h, top, bottom), grid(w, left, right), keyed)
        return float((votes * sign).sum() / max(counts.sum(), 1.0))

    right, n = decode(0, 0, 0, 0)
    tried = 1
    if search and binomial_tail(right, max(n, 1)) >= THRESHOLD:
        cut = (0.0, 0.0, 0.0, 0.0)  # top, bottom, left, right in pixels
        for _ in range(3):  # alternate: columns with the rows' grid fixed, then rows
            ry = _axis(h, grid(h, cut[0], cut[1]))[0]
            xs, k = _search_axis(ry @ y, ry.sum(1), w, ~vert, keyed, sign, transpose=False)
            rx = _axis(w, grid(w, *xs[0]))[0]
            ys, k2 = _search_axis(rx @ y.T, rx.sum(1), h, vert, keyed, sign, transpose=True)
            # the best pair of candidates on every block
            cut = max(((t, b, l, r) for t, b in ys for l, r in xs), key=lambda c: soft(*c))
            tried += k + k2 + len(xs) * len(ys)
        right2, n2 = decode(*cut)
        if n2 and binomial_tail(right2, n2) < binomial_tail(right, max(n, 1)):
            right, n = right2, n2
    return right, n, tried


def detect(image: np.ndarray, key: str = KEY, search: bool = True) -> Detection:
    """Whether ``image`` (uint8 array) carries the mark: bit accuracy and the binomial p-value of
    that many right bits by chance, corrected for the hypotheses tried (both lattice steps; a crop
    of up to :data:`MAX_CROP` of each side when the uncropped grid does not already decode)."""
    y = _luma(np.asarray(image))
    if min(y.shape) < MIN_SIZE:
        return Detection(False, 0.0, 1.0)
    first = step_for(y)  # the step the embedder most likely used first (saturation survives most edits)
    best, tried = (0, 0), 0
    for step in (first, *(s for s in STEPS if s != first)):
        right, n, k = _detect_step(y, _keyed(key, step), search)
        tried += k
        if n and (best[1] == 0 or binomial_tail(right, n) < binomial_tail(*best)):
            best = (right, n)
        if n and binomial_tail(right, n) * tried < THRESHOLD / 100:
            break  # already certain: the other step need not be searched
    right, n = best
    if n == 0:
        return Detection(False, 0.0, 1.0)
    p = min(1.0, binomial_tail(right, n) * max(tried, len(STEPS)))
    return Detection(p < THRESHOLD, right / n, p)

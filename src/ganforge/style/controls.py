"""User controls shared by every style method: inputs, size handling, colour preservation, styles
with float weights, spatial masks (given or automatic) and tiled inference.

Everything works on float tensors N×C×H×W in [0, 1]; nothing here knows about a particular method.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import GanforgeError
from ..imageio import open_image, pil_to_tensor

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor]


class StyleError(GanforgeError):
    """A style-transfer input or option cannot be used."""


# -- inputs -------------------------------------------------------------------------------------

def to_batch(image: ImageLike, mode: str = "RGB") -> torch.Tensor:
    """Path, PIL image or tensor (C×H×W / 1×C×H×W, values in [0, 1]) -> float 1×C×H×W."""
    if isinstance(image, (str, os.PathLike)):
        return pil_to_tensor(open_image(image, mode)).unsqueeze(0).contiguous()
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.convert(mode)).unsqueeze(0).contiguous()
    if isinstance(image, torch.Tensor):
        t = image.detach().float()
        if t.dim() == 2:
            t = t[None]
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4:
            raise StyleError(f"image tensor must be C×H×W or 1×C×H×W, got shape {tuple(image.shape)}")
        want = 3 if mode == "RGB" else 1
        if t.shape[1] == 1 and want == 3:
            t = t.expand(-1, 3, -1, -1)
        if t.shape[1] != want:
            raise StyleError(f"image tensor has {t.shape[1]} channels, expected {want}")
        return t.clamp(0, 1).contiguous()
    raise StyleError(f"unsupported image type {type(image).__name__}: give a path, PIL image or tensor")


def parse_style_spec(spec: str) -> tuple[str, float]:
    """``path.jpg:0.7`` -> (path, 0.7); a bare path gets weight 1. Windows drive colons are kept."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and not tail.startswith(("\\", "/")):
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def normalise_weights(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    if any(w < 0 for w in weights) or total <= 0:
        raise StyleError(f"style weights must be >= 0 with a positive sum, got {list(weights)}")
    return [float(w) / total for w in weights]


# -- size -----------------------------------------------------------------------------------------

def limit_size(x: torch.Tensor, max_size: int | None) -> torch.Tensor:
    """Downscale so that the long side is at most ``max_size`` (never upscales)."""
    if not max_size:
        return x
    h, w = x.shape[-2:]
    scale = max_size / max(h, w)
    if scale >= 1:
        return x
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


# -- colour ---------------------------------------------------------------------------------------

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_RGB2YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(x), x)


def luminance_transfer(stylised: torch.Tensor, content: torch.Tensor, space: str = "yiq") -> torch.Tensor:
    """Keep the content's chrominance and take only the luminance from the stylised image
    (Gatys et al. 2016, 'Preserving colour'); ``space`` is 'yiq' or 'ycbcr'."""
    matrix = {"yiq": _RGB2YIQ, "ycbcr": _RGB2YCBCR}.get(space)
    if matrix is None:
        raise StyleError(f"unknown colour space {space!r}; use yiq or ycbcr")
    content = resize_to(content, stylised.shape[-2:])
    a, b = _apply(matrix, stylised), _apply(matrix, content)
    mixed = torch.cat([a[:, :1], b[:, 1:]], dim=1)
    return _apply(torch.linalg.inv(matrix), mixed).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8)
    vals = vals.rsqrt() if inverse else vals.sqrt()
    return vecs @ torch.diag_embed(vals) @ vecs.transpose(-1, -2)


def match_colour(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``style`` so its pixel mean and covariance equal the content's (colour histogram
    matching of Gatys et al. 2016): the stylisation then keeps the content's colours."""
    s = style.double().flatten(2)  # N×3×P
    c = content.double().flatten(2)
    ms, mc = s.mean(2, keepdim=True), c.mean(2, keepdim=True)
    eye = torch.eye(3, dtype=s.dtype)
    cs = torch.cov(s[0]) + eps * eye
    cc = torch.cov(c[0]) + eps * eye
    transform = _sqrtm(cc) @ _sqrtm(cs, inverse=True)
    out = transform @ (s - ms) + mc
    return out.view_as(style).float().clamp(0, 1)


def preserve_colour(stylised: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Post-processing half of colour preservation ('luminance'/'luminance-ycbcr')."""
    if mode in (None, "none", "match"):
        return stylised
    if mode in ("luminance", "luminance-yiq"):
        return luminance_transfer(stylised, content, "yiq")
    if mode == "luminance-ycbcr":
        return luminance_transfer(stylised, content, "ycbcr")
    raise StyleError(f"unknown colour mode {mode!r}; use none, match, luminance or luminance-ycbcr")


COLOUR_MODES = ("none", "match", "luminance", "luminance-ycbcr")


# -- masks ----------------------------------------------------------------------------------------

def load_mask(mask: ImageLike, size: tuple[int, int]) -> torch.Tensor:
    """A soft mask 1×1×H×W in [0, 1] at ``size`` from a file, PIL image or tensor."""
    m = to_batch(mask, "L") if not isinstance(mask, torch.Tensor) else mask.float()
    while m.dim() < 4:
        m = m[None]
    if m.shape[1] != 1:
        m = m.mean(1, keepdim=True)
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def region_masks(mask: torch.Tensor, n_styles: int) -> list[torch.Tensor]:
    """One mask for two styles means [mask, 1-mask]; a K-channel mask gives K regions (normalised)."""
    if mask.shape[1] == 1:
        if n_styles != 2:
            raise StyleError(f"a single-channel mask needs exactly 2 styles (inside, outside), got {n_styles}")
        return [mask, 1 - mask]
    if mask.shape[1] != n_styles:
        raise StyleError(f"mask has {mask.shape[1]} regions but {n_styles} styles were given")
    mask = mask / mask.sum(1, keepdim=True).clamp_min(1e-6)
    return list(mask.split(1, dim=1))


def auto_foreground_mask(content: torch.Tensor, encoder: torch.nn.Module | None = None,
                         iterations: int = 20) -> torch.Tensor:
    """Heuristic foreground/background split without a segmentation network: k-means (k=2) on
    colour + (optionally) VGG relu3_1 features; the cluster that dominates the image border is the
    background. Returns a soft 1×1×H×W mask (1 = foreground)."""
    h, w = content.shape[-2:]
    small = limit_size(content, 128)
    feats = [small]
    if encoder is not None:
        with torch.inference_mode():
            f = encoder(small, ("relu3_1",))["relu3_1"].float()
        f = F.interpolate(f, size=small.shape[-2:], mode="bilinear", align_corners=False)
        f = f / f.flatten(1).norm(dim=0).mean().clamp_min(1e-6)
        feats.append(f)
    x = torch.cat(feats, 1)[0].flatten(1).T  # P×D
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    gen = torch.Generator().manual_seed(0)
    centres = x[torch.randperm(len(x), generator=gen)[:2]].clone()
    for _ in range(iterations):
        labels = torch.cdist(x, centres).argmin(1)
        for k in range(2):
            if (labels == k).any():
                centres[k] = x[labels == k].mean(0)
    lab = labels.view(1, 1, *small.shape[-2:]).float()
    border = torch.cat([lab[..., 0, :].flatten(), lab[..., -1, :].flatten(), lab[..., :, 0].flatten(),
                        lab[..., :, -1].flatten()])
    fg = (1 - lab) if border.mean() > 0.5 else lab  # background = the label most common on the border
    fg = F.avg_pool2d(F.pad(fg, (2, 2, 2, 2), mode="replicate"), 5, 1)  # soften the edge
    return F.interpolate(fg, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


# -- tiling ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    y0: int  # the tile's region (with halo) in the image
    x0: int
    y1: int
    x1: int
    core: tuple[int, int, int, int]  # the part it owns before blending: y0, x0, y1, x1 (image coords)


def plan_tiles(h: int, w: int, tile: int, overlap: int, halo: int, multiple: int = 8) -> list[Tile]:
    """Cover H×W with tiles of ``tile`` px that overlap by ``overlap`` (blended) and extend by
    ``halo`` px of context on each side (computed, then discarded), aligned to ``multiple``."""
    if tile <= 2 * overlap:
        raise StyleError(f"tile size {tile} must exceed twice the overlap {overlap}")
    step = tile - overlap

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        count = math.ceil((n - tile) / step) + 1
        return [min(i * step, n - tile) // multiple * multiple for i in range(count - 1)] + [n - tile]

    tiles = []
    for ys in starts(h):
        for xs in starts(w):
            ye, xe = min(ys + tile, h), min(xs + tile, w)
            y0, x0 = max(0, ys - halo), max(0, xs - halo)
            y0, x0 = y0 // multiple * multiple, x0 // multiple * multiple
            tiles.append(Tile(y0, x0, min(h, ye + halo), min(w, xe + halo), (ys, xs, ye, xe)))
    return tiles


def partition_tiles(h: int, w: int, tile: int, halo: int, multiple: int = 8) -> list[Tile]:
    """Non-overlapping cores (a partition of the image, starts aligned to ``multiple``) with
    ``halo`` px of context: for gathering whole-image statistics tile by tile without double counting."""
    tile = max(multiple, tile // multiple * multiple)
    tiles = []
    for ys in range(0, h, tile):
        for xs in range(0, w, tile):
            ye, xe = min(ys + tile, h), min(xs + tile, w)
            y0, x0 = max(0, ys - halo) // multiple * multiple, max(0, xs - halo) // multiple * multiple
            tiles.append(Tile(y0, x0, min(h, ye + halo), min(w, xe + halo), (ys, xs, ye, xe)))
    return tiles


def blend_weight(core: tuple[int, int, int, int], h: int, w: int, overlap: int) -> torch.Tensor:
    """Linear ramps over ``overlap`` px at inner core edges (1 at image borders): sums of these over
    overlapping tiles are normalised, so seams fade instead of cutting."""
    y0, x0, y1, x1 = core
    wy = torch.ones(y1 - y0)
    wx = torch.ones(x1 - x0)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1] if overlap > 0 else torch.empty(0)
    if overlap:
        if y0 > 0:
            wy[:overlap] = ramp[: min(overlap, len(wy))]
        if y1 < h:
            wy[-overlap:] = torch.minimum(wy[-overlap:], ramp.flip(0)[-min(overlap, len(wy)):])
        if x0 > 0:
            wx[:overlap] = ramp[: min(overlap, len(wx))]
        if x1 < w:
            wx[-overlap:] = torch.minimum(wx[-overlap:], ramp.flip(0)[-min(overlap, len(wx)):])
    return wy[:, None] * wx[None, :]


def run_tiled(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], *, tile: int, overlap: int,
              halo: int, multiple: int = 8) -> torch.Tensor:
    """Apply an image->image ``fn`` tile by tile and blend: peak memory is one tile, not the image."""
    n, _, h, w = x.shape
    out = None
    total = torch.zeros(1, 1, h, w)
    for t in plan_tiles(h, w, tile, overlap, halo, multiple):
        y = fn(x[..., t.y0:t.y1, t.x0:t.x1]).float().cpu()
        if out is None:
            out = torch.zeros(n, y.shape[1], h, w)
        cy0, cx0, cy1, cx1 = t.core
        piece = y[..., cy0 - t.y0:cy1 - t.y0, cx0 - t.x0:cx1 - t.x0]
        weight = blend_weight(t.core, h, w, overlap)
        out[..., cy0:cy1, cx0:cx1] += piece * weight
        total[..., cy0:cy1, cx0:cx1] += weight
    return out / total.clamp_min(1e-8)


def resolve_paths(folder: str | os.PathLike) -> list[Path]:
    from ..imageio import is_image_file

    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise StyleError(f"not a file or folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise StyleError(f"no images in {folder}")
    return files


StyleArg = Union[ImageLike, Sequence[Union[ImageLike, tuple[ImageLike, float]]]]


def identity(image: ImageLike) -> str:
    """A cache key for an input image: path + mtime + size, or a hash of the pixels."""
    if isinstance(image, (str, os.PathLike)):
        p = Path(image).resolve()
        st = p.stat() if p.exists() else None
        return f"path:{p}:{st.st_mtime_ns if st else 0}:{st.st_size if st else 0}"
    if isinstance(image, Image.Image):
        return "pil:" + hashlib.sha1(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu().contiguous()
        return "tensor:" + hashlib.sha1(t.numpy().tobytes() + repr(tuple(t.shape)).encode()).hexdigest()
    raise StyleError(f"unsupported image type {type(image).__name__}")


def parse_styles(style: StyleArg, weights: Sequence[float] | None = None) -> list[tuple[ImageLike, float]]:
    """Normalise the many ways to give styles into [(image, weight)] with weights summing to 1."""
    if isinstance(style, (str, os.PathLike, Image.Image, torch.Tensor)):
        items: list[Any] = [style]
    else:
        items = list(style)
    pairs: list[tuple[ImageLike, float]] = []
    for item in items:
        if isinstance(item, tuple):
            pairs.append((item[0], float(item[1])))
        elif isinstance(item, str) and not Path(item).exists():
            pairs.append(parse_style_spec(item))
        else:
            pairs.append((item, 1.0))
    if not pairs:
        raise StyleError("give at least one style image")
    if weights is not None:
        if len(weights) != len(pairs):
            raise StyleError(f"{len(weights)} style weights for {len(pairs)} styles")
        pairs = [(img, float(w)) for (img, _), w in zip(pairs, weights)]
    norm = normalise_weights([w for _, w in pairs])
    return [(img, w) for (img, _), w in zip(pairs, norm)]

"""Apply a direction to a latent or an image (projected first), mix two images' styles by layer
range, and draw what each direction does (a grid: one row per direction, strengths across)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..generator import Generator
from .common import (LATENT_SUFFIXES, EditError, check_latent, load_latent, load_model, synthesize,
                     with_noise)
from .directions import Directions, parse_layers, pca, sefa

BUILTIN = re.compile(r"(sefa|pca)-(\d+)(?:@(\d+)-(\d+))?")
DEFAULT_STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)


@dataclass
class Latent:
    """A latent to edit: ws (1×num_ws×w_dim), the projection's noise maps, where it came from."""

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    source: str
    projection: object | None = None  # the Projection when an image was projected here


def as_latent(gen: Generator, item, *, project_steps: int = 300, space: str = "w", **project_kwargs) -> Latent:
    """A :class:`Latent` from a latent file (.npz/.safetensors), a ws tensor (w_dim, 1×w_dim,
    num_ws×w_dim or 1×num_ws×w_dim), or an image (a path or PIL image), which is projected first
    (``project_steps`` in ``space``)."""
    if isinstance(item, Latent):
        return Latent(check_latent(gen, item.ws, item.source), item.noise, item.source, item.projection)
    if isinstance(item, torch.Tensor):  # a tensor is a latent; give images as paths or PIL images
        return Latent(check_latent(gen, item), {}, "tensor")
    if isinstance(item, (str, os.PathLike)) and Path(item).suffix in LATENT_SUFFIXES:
        ws, noise = load_latent(item)
        return Latent(check_latent(gen, ws, str(item)), noise, str(item))
    from .project import project

    result = project(gen, item, steps=project_steps, space=space, frames=0, **project_kwargs)
    return Latent(result.ws, result.noise, str(item) if not isinstance(item, torch.Tensor) else "image", result)


def resolve_direction(gen: Generator, name: str, directions: Directions | str | os.PathLike | None = None
                      ) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """(unit vector, scale, [start, end) ws) of direction ``name``: from ``directions`` (a file or
    :class:`Directions`), or computed for the built-in names ``sefa-K``/``pca-K`` (optionally
    ``@A-B`` for ws A..B)."""
    if directions is not None:
        dirs = directions if isinstance(directions, Directions) else Directions.load(directions)
        dirs.check(gen)
        if name in dirs.names:
            return dirs.get(name)
        if not BUILTIN.fullmatch(name):
            dirs.get(name)  # the one-line error naming what the file has
    m = BUILTIN.fullmatch(name)
    if not m:
        raise EditError(f"unknown direction {name!r}; use sefa-K or pca-K (K = 0, 1, ...; optional @A-B for ws "
                        "A..B) or a name from a --directions file")
    method, k = m.group(1), int(m.group(2))
    layers = None if m.group(3) is None else (int(m.group(3)), int(m.group(4)) + 1)
    parse_layers(layers, gen)
    found = (sefa if method == "sefa" else pca)(gen, k=k + 1, layers=layers)
    if k >= len(found):
        raise EditError(f"unknown direction {name!r}: this model has {len(found)} {method} directions")
    return found.vectors[k], float(found.scales[k]), found.layers[k]


def apply_direction(ws: torch.Tensor, vector: torch.Tensor, scale: float, strength: float,
                    layers: tuple[int, int]) -> torch.Tensor:
    """ws moved by ``strength`` × ``scale`` along ``vector`` on the ws in ``layers`` (a copy)."""
    if not math.isfinite(strength):
        raise EditError(f"--strength must be a finite number (typically -3..3), got {strength}")
    out = ws.clone()
    out[:, layers[0]:layers[1]] += strength * scale * vector.to(ws)
    return out


@dataclass
class EditResult:
    image: torch.Tensor  # 1×C×R×R in [0, 1]
    ws: torch.Tensor
    latent: Latent
    direction: str
    strength: float
    layers: tuple[int, int]

    def summary(self) -> dict:
        out = {"source": self.latent.source, "direction": self.direction, "strength": self.strength,
               "layers": list(self.layers)}
        if self.latent.projection is not None:
            out["projection"] = self.latent.projection.summary()
        return out


def render(gen: Generator, ws: torch.Tensor, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Images in [0, 1] for ws with the latent's noise maps (the model's own when none)."""
    net = with_noise(gen.G_ema, noise)
    with torch.no_grad():
        return synthesize(net, ws.to(gen.device)).clamp(0, 1).cpu()


def edit(model, item, direction: str, strength: float, *, layers: str | tuple[int, int] | None = None,
         directions: Directions | str | os.PathLike | None = None, device: str = "auto",
         precision: str = "auto", **project_kwargs) -> EditResult:
    """Move ``item`` (a latent file or tensor, or an image, projected first) along ``direction`` by
    ``strength`` standard deviations of W; ``layers`` overrides the direction's own ws range."""
    gen = load_model(model, device, precision)
    latent = as_latent(gen, item, **project_kwargs)
    vector, scale, own = resolve_direction(gen, direction, directions)
    span = own if layers is None else parse_layers(layers, gen)
    ws = apply_direction(latent.ws, vector, scale, float(strength), span)
    return EditResult(render(gen, ws, latent.noise), ws, latent, direction, float(strength), span)


def mix(model, a, b, layers: str | tuple[int, int], *, device: str = "auto", precision: str = "auto",
        **project_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Style mixing: ``a``'s ws with ws ``layers`` taken from ``b`` (latents or images); returns
    (image, ws). Noise maps are ``a``'s."""
    gen = load_model(model, device, precision)
    la, lb = as_latent(gen, a, **project_kwargs), as_latent(gen, b, **project_kwargs)
    start, end = parse_layers(layers, gen)
    ws = la.ws.clone()
    ws[:, start:end] = lb.ws[:, start:end]
    return render(gen, ws, la.noise), ws


def direction_grid(gen: Generator, dirs: Directions, base: torch.Tensor | None = None,
                   strengths=DEFAULT_STRENGTHS, seed: int = 0, truncation: float = 0.7) -> torch.Tensor:
    """Images (len(dirs) × len(strengths)) of ``base`` (default: the ws of ``seed`` at
    ``truncation``) moved along each direction; row-major, one row per direction."""
    dirs.check(gen)
    if base is None:
        z = gen.latents(1, seed)
        base = gen.mapping(z, gen.labels(1, None, seed), truncation=truncation).cpu()
    base = check_latent(gen, base)
    rows = [apply_direction(base, dirs.vectors[i], float(dirs.scales[i]), s, dirs.layers[i])
            for i in range(len(dirs)) for s in strengths]
    return render(gen, torch.cat(rows))


def save_direction_grid(gen: Generator, dirs: Directions, path: str | os.PathLike, *, provenance=None,
                        **kwargs) -> Path:
    """:func:`direction_grid` written to ``path`` (``provenance``: a generated image's metadata and mark)."""
    from ..sample import save_grid

    strengths = kwargs.get("strengths", DEFAULT_STRENGTHS)
    return save_grid(direction_grid(gen, dirs, **kwargs), path, nrow=len(strengths), provenance=provenance)

"""Smooth random latent walks of a trained GAN as a video: keyframe latents (one per
``key_seconds``) joined with smoothstep easing (no jumps in speed at the keyframes). z-space
generators slerp z, and for conditional runs morph the class by interpolating the class embedding
linearly from one keyframe's class to the next. Style-based (W-space) generators map each
keyframe's z once, with its own class and the truncation toward ``w_avg``, and step linearly
between the keyframes' w (StyleGAN's own practice; the mapping network embeds the class, so a class
morph needs nothing more). Frames are generated and written in batches (streamed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..errors import GanforgeError
from .io import VideoWriter


def _ease(t: float) -> float:
    return t * t * (3 - 2 * t)


class _MixedEmbedding(torch.nn.Module):
    """Stands in for a generator's class embedding during one call: row i is frame i's mix."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table[labels]


def walk_plan(n_frames: int, n_keys: int) -> list[tuple[int, float]]:
    """For each frame: (keyframe index it leaves, eased position in [0, 1) towards the next)."""
    per = n_frames / max(1, n_keys - 1)
    plan = []
    for i in range(n_frames):
        pos = min(i / per, n_keys - 1 - 1e-9)
        k = int(pos)
        plan.append((k, _ease(pos - k)))
    return plan


def walk_frames(gen, keys: torch.Tensor, plan: list[tuple[int, float]], key_classes: Sequence[int] | None = None,
                *, truncation: float = 1.0, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """The frames of a walk through keyframe latents ``keys`` following ``plan`` (:func:`walk_plan`),
    as CPU float batches N×C×H×W in [0, 1] of at most ``batch_size`` frames. ``gen``: a
    :class:`ganforge.sample.Generator`; ``key_classes``: each keyframe's class (conditional runs).
    ``truncation``: psi toward ``w_avg`` for W-space generators (z-space ones truncate when the keys
    are drawn)."""
    from ..sample import slerp

    net = gen.G_ema
    device = next(net.parameters()).device
    if gen.w_space:
        y = torch.tensor(list(key_classes)) if gen.num_classes else None
        w_keys = gen.mapping(keys, y, truncation=truncation)  # once per keyframe
        for b0 in range(0, len(plan), batch_size):
            rows = plan[b0:b0 + batch_size]
            ws = torch.stack([torch.lerp(w_keys[k], w_keys[k + 1], t) for k, t in rows])
            yield gen.synthesize(ws, batch_size=len(rows)).cpu()
        return
    embed = getattr(net, "embed", None)
    if gen.num_classes and embed is None:
        raise GanforgeError("this conditional generator has no class embedding to morph")
    for b0 in range(0, len(plan), batch_size):
        rows = plan[b0:b0 + batch_size]
        z = torch.stack([slerp(keys[k], keys[k + 1], t) for k, t in rows])
        with torch.no_grad():
            if gen.num_classes:
                table = torch.stack([(1 - t) * embed.weight[key_classes[k]] + t * embed.weight[key_classes[k + 1]]
                                     for k, t in rows])
                net.embed = _MixedEmbedding(table)
                try:
                    imgs = net(z.to(device), torch.arange(len(rows), device=device))
                finally:
                    net.embed = embed
            else:
                imgs = net(z.to(device))
        yield imgs.float().add(1).div(2).clamp(0, 1).cpu()


def latent_walk(gen, seconds: float, out: str | Path, *, fps: int = 24, key_seconds: float = 2.0, seed: int = 0,
                classes: Sequence[int] | None = None, truncation: float = 1.0, scale: int | None = None,
                batch_size: int = 32, progress: bool = True, provenance=None) -> dict:
    """Write a latent walk of ``seconds`` to ``out`` (.mp4 or a PNG-sequence folder). ``gen``: a
    :class:`ganforge.sample.Generator`. ``classes``: the class of each keyframe in turn (cycled;
    conditional runs; default every class in order); ``scale``: integer upscaling (nearest),
    default so the long side is at least 256 px. ``truncation``: for z-space generators |z| is
    resampled above it, for W-space ones each keyframe's w moves toward ``w_avg`` by it (psi).
    ``provenance`` (a :class:`ganforge.provenance.Provenance`): the file's tags and frame watermark."""
    from tqdm.auto import tqdm

    if not seconds > 0 or fps < 1:
        raise GanforgeError("--seconds must be positive and --fps at least 1")
    n = max(2, int(round(seconds * fps)))
    n_keys = max(2, int(math.ceil(seconds / key_seconds)) + 1)
    if gen.w_space and not truncation >= 0:
        raise GanforgeError(f"--truncation must be >= 0 (1: none), got {truncation}")
    keys = gen.latents(n_keys, seed=seed, truncation=1.0 if gen.w_space else truncation)  # W: psi applies to w
    plan = walk_plan(n, n_keys)
    key_classes = None
    if gen.num_classes:
        cls = list(classes) if classes else list(range(gen.num_classes))
        if min(cls) < 0 or max(cls) >= gen.num_classes:
            raise GanforgeError(f"classes must be in 0..{gen.num_classes - 1}")
        key_classes = [cls[i % len(cls)] for i in range(n_keys)]
    elif classes:
        raise GanforgeError("this generator is unconditional; --classes is not available")
    scale = scale or max(1, math.ceil(256 / gen.resolution))
    frames = walk_frames(gen, keys, plan, key_classes, truncation=truncation, batch_size=batch_size)
    writer = VideoWriter(out, fps, provenance=provenance)
    try:
        bar = tqdm(total=n, unit="frame", desc="latent walk", disable=not progress)
        for imgs in frames:
            if imgs.shape[1] == 1:
                imgs = imgs.expand(-1, 3, -1, -1)
            if scale > 1:
                imgs = torch.nn.functional.interpolate(imgs, scale_factor=scale, mode="nearest")
            for img in imgs.permute(0, 2, 3, 1).numpy():
                writer.write(img)
            bar.update(len(imgs))
        bar.close()
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return {"output": str(path), "frames": n, "fps": fps, "keyframes": n_keys, "seed": seed,
            "classes": key_classes, "size": [gen.resolution * scale] * 2,
            "space": "w" if gen.w_space else "z", "truncation": truncation}

"""Flicker and style metrics for a stylised video, streamed (a ring of the last k frames).

Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency", eq. 7), at a frame
distance k::

    E_warp(k) = 1/(T−k) · Σ_{t=k}^{T−1}  Σ_i M_t(i) · ‖O_t(i) − Ŵ(O_{t−k})(i)‖² / (3 · Σ_i M_t(i))

``O`` the stylised frames as RGB in [0, 1]; ``Ŵ`` backward warping with the optical flow
F_{t→t−k} computed on the **original** video (OpenCV DIS here; Lai et al. used FlowNet2, so
absolute values differ from their tables); ``M_t`` the forward–backward occlusion mask of that flow
(:func:`ganforge.video.flow.occlusion_mask`). The squared error is averaged over the non-occluded
pixels and the 3 channels: a per-channel MSE on the [0, 1] scale (×255² for 8-bit units). k=1 is
short-term flicker; k=10 long-term drift. Lower is steadier; 0 for a video that moves exactly
with its source.

A method can make E_warp small by ignoring the style (the identity has the source's own small
E_warp), so :func:`style_distance` reports how far each stylised frame's feature statistics are
from the style image's.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .flow import FlowEstimator, occlusion_mask, warp
from .io import VideoError, iter_frames, probe

FORMULA = ("E_warp(k) = mean over t>=k of [ sum_i M_t(i) * ||O_t(i) - W(O_{t-k})(i)||^2 / (3 * sum_i M_t(i)) ], "
           "O = stylised RGB in [0,1], W = backward warp by the flow F_{t->t-k} of the ORIGINAL video "
           "(OpenCV DIS), M = forward-backward occlusion mask (Lai et al. 2018)")
SCALE = "per-channel MSE on RGB in [0, 1] (multiply by 65025 for 8-bit units); lower = less flicker"


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == size:
        return frame
    import cv2

    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def warping_error(original: str | Path, stylised: str | Path, ks: Sequence[int] = (1, 10), *, flow: str = "dis",
                  max_frames: int | None = None, device: Any = "auto", progress: bool = False) -> dict[str, Any]:
    """E_warp(k) for each k in ``ks`` (see the module docstring). Frames of ``stylised`` are
    resized to the original's size if they differ (e.g. an odd size padded for H.264). ``device``
    runs a RAFT flow network (the DIS/Farnebäck flows run on the CPU); ``progress`` shows a bar."""
    from tqdm.auto import tqdm

    a, b = probe(original), probe(stylised)
    if a.frames != b.frames:
        raise VideoError(f"frame counts differ: {original} has {a.frames}, {stylised} has {b.frames}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise VideoError("frame distances k must be >= 1")
    est = FlowEstimator(flow, device=device)
    size = (a.height, a.width)
    ring: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=ks[-1] + 1)
    sums = {k: 0.0 for k in ks}
    counts = {k: 0 for k in ks}
    trusted = {k: 0.0 for k in ks}
    n = 0
    total = a.frames if max_frames is None else min(a.frames, max_frames)
    pairs = tqdm(zip(iter_frames(original), iter_frames(stylised)), total=total, desc="E_warp", unit="frame",
                 disable=not progress)
    for src, out in pairs:
        if max_frames is not None and n >= max_frames:
            break
        out = _resize(out, size).astype(np.float32) / 255
        ring.append((src, out))
        for k in ks:
            if len(ring) > k:
                src_prev, out_prev = ring[-1 - k]
                f_cp = est(src, src_prev)
                mask = occlusion_mask(f_cp, est(src_prev, src))
                m = mask.sum()
                if m <= 0:
                    continue
                diff = (out - warp(out_prev, f_cp)) ** 2
                sums[k] += float((diff * mask[..., None]).sum() / (3 * m))
                counts[k] += 1
                trusted[k] += float(mask.mean())
        n += 1
    result: dict[str, Any] = {"frames": n, "flow": flow, "formula": FORMULA, "scale": SCALE}
    for k in ks:
        result[f"E_warp_k{k}"] = sums[k] / counts[k] if counts[k] else None
        result[f"trusted_fraction_k{k}"] = trusted[k] / counts[k] if counts[k] else None
    return result


# -- style distance -----------------------------------------------------------------------------------

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def _stats_distance(feats: dict[str, torch.Tensor], target: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> float:
    from ..style.adain import mean_std

    total = 0.0
    for layer, f in feats.items():
        m, s = mean_std(f)
        tm, ts = target[layer]
        total += float(F.mse_loss(m, tm) + F.mse_loss(s, ts))
    return total


class StyleDistance:
    """Mean–std (AdaIN style loss) distance between an image and a style image: Σ over
    relu1_1..relu4_1 of MSE(μ) + MSE(σ) of a VGG19's features when an encoder is given or a VGG19
    is on this machine (``kind='vgg:<name>'``); otherwise the same on RGB pixels in [0, 1]
    (``kind='colour'``: mean and std per channel). Images are used at ``size`` px on the long side."""

    def __init__(self, style, *, encoder: Any = None, size: int = 256, allow_download: bool = False,
                 device: Any = "cpu") -> None:
        from ..device import resolve_device
        from ..style.controls import limit_size, to_batch

        self.device = resolve_device(device)
        self.size = size
        self.encoder = None
        self.kind = "colour"
        if encoder is None:
            from ..nets.vgg import GATYS_ENCODERS, load_vgg
            from ..weights import find

            name = next((n for n in GATYS_ENCODERS if find(n) is not None), None)
            if name is not None:
                encoder = load_vgg(name)
                self.kind = f"vgg:{name}"
        elif isinstance(encoder, str):
            from ..nets.vgg import load_vgg

            self.kind = f"vgg:{encoder}"
            encoder = load_vgg(encoder)
        else:
            self.kind = f"vgg:{getattr(encoder, 'source', 'given')}"
        self.encoder = encoder.eval().to(self.device) if encoder is not None else None
        s = limit_size(to_batch(style), size)
        self.target = {k: tuple(v) for k, v in self._stats(s).items()}

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.encoder is None:
            return {"rgb": x}
        with torch.inference_mode():
            return {k: v.float().cpu() for k, v in self.encoder(x.to(self.device), STYLE_LAYERS).items()}

    def _stats(self, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from ..style.adain import mean_std

        return {k: mean_std(v) for k, v in self._features(x).items()}

    def __call__(self, frame: np.ndarray) -> float:
        from ..style.controls import limit_size

        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255
        return _stats_distance(self._features(limit_size(x, self.size)), self.target)


def style_distance(stylised: str | Path, style, *, every: int = 1, encoder: Any = None, size: int = 256,
                   max_frames: int | None = None, device: Any = "cpu") -> dict[str, Any]:
    """Mean per-frame :class:`StyleDistance` over every ``every``-th frame of ``stylised``."""
    dist = StyleDistance(style, encoder=encoder, size=size, device=device)
    values = []
    for i, frame in enumerate(iter_frames(stylised)):
        if max_frames is not None and i >= max_frames:
            break
        if i % every == 0:
            values.append(dist(frame))
    if not values:
        raise VideoError(f"{stylised}: no frames to measure")
    return {"style_distance": float(np.mean(values)), "style_distance_kind": dist.kind,
            "style_distance_definition": ("sum over relu1_1..relu4_1 of MSE(channel mean) + MSE(channel std) of VGG19 "
                                          "features" if dist.encoder is not None else
                                          "MSE(channel mean) + MSE(channel std) of RGB pixels in [0,1] (no VGG19 "
                                          "weights on this machine)") + f", long side {size} px; lower = closer to the style",
            "style_frames": len(values)}

"""Temporal consistency for per-frame image operations (a light version of Ruder et al. 2016's
idea, without re-optimising): the previous *output* frame is warped onto the current one with the
optical flow between the consecutive *source* frames, and blended into the current per-frame result
where the flow is trusted (forward–backward check)::

    b_t   = styl_t + s · M_t · (warp(out_{t−1}, F_{t→t−1}) − styl_t)
    out_t = L(b_t) + g_t · (b_t − L(b_t)),   g_t = clip(σ_loc(styl_t) / σ_loc(b_t), 1, 2)

``s`` = ``strength`` in [0, 1) (0: per-frame output, unchanged), ``M_t`` the occlusion mask.
Because ``out_{t−1}`` already carries earlier frames, what stays still stays stable over many
frames; occluded and newly visible pixels take the fresh per-frame result.

The second line (``contrast='restore'``, the default) gives back the texture contrast that
blending takes away: averaging two stylisations whose brush strokes do not line up exactly lowers
the local contrast (the style distance rises: +13 % at s = 0.6 on cutBunny). ``L`` is a box
filter of radius 3 px, ``σ_loc`` the local standard deviation of the detail ``x − L(x)`` in the
same window (mean over RGB); the gain only raises contrast (≥ 1, at most 2), and where nothing
was blended ``b_t = styl_t`` so ``g_t = 1``: a static video and the occluded regions stay as the
per-frame result. ``contrast='none'`` is the plain blend.

Measured on cutBunny (AdaIN, docs/benchmarks.md#video-style-transfer): the defaults trade
short-term flicker for style better than a plain blend at any strength, at the price of less
long-term (k = 10) smoothing, since the restored detail is the current frame's.
"""

from __future__ import annotations

import numpy as np

from .flow import FlowEstimator, _cv2, flow_and_mask, warp

DEFAULT_STRENGTH = 0.7
CONTRAST_MODES = ("restore", "none")
CONTRAST_RADIUS = 3
MAX_GAIN = 2.0


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    k = 2 * radius + 1
    return cv2.blur(x, (k, k), borderType=cv2.BORDER_REFLECT)


def restore_contrast(blend: np.ndarray, ref: np.ndarray, radius: int = CONTRAST_RADIUS,
                     max_gain: float = MAX_GAIN) -> np.ndarray:
    """``blend``'s detail (``x − box(x)``) scaled up, pixel by pixel, to the local contrast of
    ``ref`` (both H×W×3 float32): gain ``sqrt(var_loc(ref) / var_loc(blend))`` clipped to
    [1, ``max_gain``]. Where ``blend`` equals ``ref`` the gain is 1."""
    eps = 1e-6
    low = _box(blend, radius)
    detail = blend - low
    var_b = _box(detail * detail, radius).mean(-1, keepdims=True)
    ref_detail = ref - _box(ref, radius)
    var_r = _box(ref_detail * ref_detail, radius).mean(-1, keepdims=True)
    gain = np.clip(np.sqrt((var_r + eps) / (var_b + eps)), 1.0, max_gain)
    return (low + detail * gain).astype(np.float32)


def resize_flow(flow: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A flow field and its trust mask computed on the source frames, carried to an output of
    another size (``size`` = (H, W)): resampled bilinearly, the vectors scaled by the size ratio."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    out *= np.array([size[1] / w, size[0] / h], dtype=np.float32)
    return out, cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


class TemporalBlender:
    """Stateful: call :meth:`__call__` once per frame, in order. :meth:`set_state` lets a resumed
    job continue exactly where it stopped."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, flow: str = "dis", contrast: str = "restore") -> None:
        from .io import VideoError

        if not 0.0 <= strength < 1.0:
            raise VideoError(f"--temporal-strength must be in [0, 1) (0: per-frame), got {strength}")
        if contrast not in CONTRAST_MODES:
            raise VideoError(f"--temporal-contrast must be one of {', '.join(CONTRAST_MODES)}, got {contrast!r}")
        self.strength = float(strength)
        self.contrast = contrast
        self.estimator = FlowEstimator(flow) if strength > 0 else None
        self.prev_src: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None
        self.trusted = []  # fraction of trusted pixels per blended frame (a diagnostic)

    def __call__(self, src: np.ndarray, styl: np.ndarray) -> np.ndarray:
        """``src``: the source frame (uint8 H×W×3); ``styl``: the per-frame result (float32 H×W×3
        in [0, 1]). Returns the blended frame (float32)."""
        out = styl
        if self.estimator is not None and self.prev_src is not None and self.prev_out is not None:
            flow, mask = flow_and_mask(self.estimator, src, self.prev_src)
            if styl.shape[:2] != src.shape[:2]:  # an upscaler's output: flow and mask at its size
                flow, mask = resize_flow(flow, mask, styl.shape[:2])
            warped = warp(self.prev_out, flow)
            weight = (self.strength * mask)[..., None]
            out = (styl + weight * (warped - styl)).astype(np.float32)
            if self.contrast == "restore":
                out = np.clip(restore_contrast(out, styl), 0.0, 1.0)
            self.trusted.append(float(mask.mean()))
        self.prev_src, self.prev_out = src, out
        return out

    def set_state(self, prev_src: np.ndarray | None, prev_out: np.ndarray | None) -> None:
        self.prev_src, self.prev_out = prev_src, prev_out

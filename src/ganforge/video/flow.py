"""Optical flow (OpenCV DIS or Farnebäck: classical, no downloaded weights; or torchvision's RAFT
when its published weights are present), backward warping and forward–backward occlusion masks.

Conventions: a flow ``f`` from image A to image B (``flow(A, B)``) is H×W×2 (dx, dy) with
``A(x) ≈ B(x + f(x))``. So ``warp(B, flow(A, B))`` resamples B onto A's pixel grid.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# RAFT (Teed & Deng 2020) through torchvision: the method name is also the weights' registry name
RAFT_MODELS = {"raft-small": "raft_small", "raft-large": "raft_large"}
FLOW_METHODS = ("dis", "farneback", *RAFT_MODELS)
RAFT_MIN_SIDE = 128  # RAFT's 4-level correlation pyramid at 1/8 resolution needs at least this many px


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        from .io import VideoError

        raise VideoError("temporal consistency needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def _gray(img: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """``flow(a, b)`` for RGB frames (uint8 or float in [0, 1]). ``method``: 'dis' (DIS, medium
    preset; default), 'farneback', or 'raft-small' / 'raft-large' (torchvision's RAFT with the
    published weights: registry names of the same spelling, found like every weights file, or an
    explicit ``weights`` path; run on ``device``, auto = CUDA when available).

    DIS's medium preset stops at half resolution; on frames whose short side is under 256 px it
    runs down to full resolution (finest scale 0), since at half of a small frame its 8-px patches
    underestimate motion. The OpenCV methods are deterministic and single-threaded by default
    (``threads=1``; OpenCV's global thread count is restored after each call)."""

    def __init__(self, method: str = "dis", threads: int = 1, *, weights: str | os.PathLike | None = None,
                 device: Any = "auto", raft_iterations: int = 12) -> None:
        if method not in FLOW_METHODS:
            from .io import VideoError

            raise VideoError(f"unknown flow method {method!r}; use one of {', '.join(FLOW_METHODS)}")
        self.method, self.threads = method, threads
        self._raft = self._dis = None
        if method in RAFT_MODELS:
            self._raft, self._device = _load_raft(method, weights, device)
            self.raft_iterations = raft_iterations
            return
        cv2 = _cv2()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._raft is not None:
            return self._raft_flow(a, b)
        cv2 = _cv2()
        ga, gb = _gray(a), _gray(b)
        before = cv2.getNumThreads()
        cv2.setNumThreads(self.threads)
        try:
            if self._dis is not None:
                self._dis.setFinestScale(0 if min(ga.shape[:2]) < 256 else 1)
                return self._dis.calc(ga, gb, None)
            return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 15, 3, 5, 1.2, 0)
        finally:
            cv2.setNumThreads(before)

    def _raft_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """RAFT's last refinement; frames are padded (edge-replicated) on the right and bottom to a
        multiple of 8 and at least RAFT_MIN_SIDE, and the flow is cut back to the frame."""
        import torch
        import torch.nn.functional as F

        h, w = a.shape[:2]
        ph = max(RAFT_MIN_SIDE, -(-h // 8) * 8) - h
        pw = max(RAFT_MIN_SIDE, -(-w // 8) * 8) - w
        x = torch.stack([raft_input(a), raft_input(b)]).to(self._device)
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        with torch.inference_mode():
            flow = self._raft(x[:1], x[1:], num_flow_updates=self.raft_iterations)[-1]
        return flow[0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()


def raft_input(img: np.ndarray):
    """An RGB frame (uint8, or float in [0, 1]; grey is repeated) as RAFT's 3×H×W input in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(img))
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = x.expand(*x.shape[:2], 3)
    return x.permute(2, 0, 1) * 2 - 1


def _load_raft(method: str, weights: str | os.PathLike | None, device: Any):
    """torchvision's RAFT with the published weights (strict load; a missing file is the registry's
    one-line error naming the fetch command)."""
    from torchvision.models import optical_flow

    from .. import weights as registry
    from ..device import resolve_device

    net = getattr(optical_flow, RAFT_MODELS[method])(weights=None)
    state = registry.load_state_dict(weights if weights is not None else method)
    registry.load_into(net, state, source=str(weights or method))
    dev = resolve_device(device)
    return net.eval().to(dev), dev


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H×W×C float or uint8) at ``x + flow(x)`` (bilinear, border replicated)."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow[..., 0]
    map_y = gy + flow[..., 1]
    return cv2.remap(np.ascontiguousarray(image), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(flow_ab: np.ndarray, flow_ba: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """1 where the A→B flow is trusted, 0 where it is not: the forward–backward check of Sundaram
    et al. 2010 (as in Ruder et al. 2016): following A→B then B→A must come back,
    ``|f_ab + f_ba(x + f_ab)|² ≤ alpha (|f_ab|² + |f_ba(x + f_ab)|²) + beta``; pixels that map
    outside the frame are occluded too. Returns H×W float32."""
    back = warp(flow_ba, flow_ab)
    total = flow_ab + back
    lhs = (total ** 2).sum(-1)
    rhs = alpha * ((flow_ab ** 2).sum(-1) + (back ** 2).sum(-1)) + beta
    h, w = flow_ab.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + flow_ab[..., 0], gy + flow_ab[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ((lhs <= rhs) & inside).astype(np.float32)


def flow_and_mask(estimator: FlowEstimator, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow cur→prev, trust mask on cur's grid): ``warp(prev_image, flow)`` aligns anything that
    moves like ``prev`` → ``cur`` onto ``cur``; the mask is 0 at occlusions and flow errors."""
    f_cp = estimator(cur, prev)
    f_pc = estimator(prev, cur)
    return f_cp, occlusion_mask(f_cp, f_pc)

"""Optical flow (OpenCV DIS or Farnebäck: classical, no downloaded weights), backward warping and
forward–backward occlusion masks.

Conventions: a flow ``f`` from image A to image B (``flow(A, B)``) is H×W×2 (dx, dy) with
``A(x) ≈ B(x + f(x))``. So ``warp(B, flow(A, B))`` resamples B onto A's pixel grid.
"""

from __future__ import annotations

import numpy as np

FLOW_METHODS = ("dis", "farneback")


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
    preset; default) or 'farneback'. DIS's medium preset stops at half resolution; on frames whose
    short side is under 256 px it runs down to full resolution (finest scale 0), since at half of a
    small frame its 8-px patches underestimate motion. Deterministic and single-threaded by default
    (``threads=1``; OpenCV's global thread count is restored after each call)."""

    def __init__(self, method: str = "dis", threads: int = 1) -> None:
        if method not in FLOW_METHODS:
            from .io import VideoError

            raise VideoError(f"unknown flow method {method!r}; use one of {', '.join(FLOW_METHODS)}")
        self.method, self.threads = method, threads
        cv2 = _cv2()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
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

"""Synthetic clips for the video tests: a textured square moving over a textured background by a
known whole-pixel motion per frame, written with PyAV (optionally with an AAC or PCM audio track)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

W, H = 64, 48
SQUARE = 16
STEP = (1, 1)  # (dx, dy) of the square per frame (stays inside for 24 frames)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.random((h // 4 + 1, w // 4 + 1, 3))
    img = np.kron(low, np.ones((4, 4, 1)))[:h, :w]
    return (img * 0.8 + 0.1).astype(np.float32)


BACKGROUND = texture(H, W, 1)
PATCH = texture(SQUARE, SQUARE, 2) * 0.5 + 0.5


def frame(t: int) -> np.ndarray:
    """Frame t (uint8 H×W×3): the square's top-left corner at (4 + t, 4 + t)."""
    img = BACKGROUND.copy()
    x, y = 4 + STEP[0] * t, 4 + STEP[1] * t
    img[y:y + SQUARE, x:x + SQUARE] = PATCH
    return (img * 255 + 0.5).astype(np.uint8)


def make_clip(path: Path, n: int = 24, fps: int = 12, *, audio: str | None = None, rotation: int = 0,
              static: bool = False, codec: str = "libx264", crf: int = 10) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = W, H
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            s.options = {"crf": str(crf)}
        if rotation:
            s.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream(audio, rate=8000)
            a.layout = "mono"
        for t in range(n):
            vf = av.VideoFrame.from_ndarray(frame(0 if static else t), format="rgb24")
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            samples = int(8000 * n / fps)
            tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 8000)).astype(np.float32)
            fmt = "fltp" if audio == "aac" else "s16"
            pts = 0
            for i in range(0, samples, 1024):
                chunk = tone[i:i + 1024]
                if fmt == "s16":
                    arr = (chunk * 32767).astype(np.int16)[None]
                else:
                    arr = chunk[None]
                af = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
                af.sample_rate, af.pts = 8000, pts
                pts += arr.shape[1]
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path

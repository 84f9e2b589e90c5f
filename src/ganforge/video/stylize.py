"""``Stylizer`` as a per-frame operation for :func:`ganforge.video.pipeline.process_video`: the
style statistics are computed once per clip (the Stylizer's cache), then every batch of frames is
one encoder/decoder pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .pipeline import FrameOp


def stylizer_op(stylizer, styles: Sequence[tuple[Any, float]], *, first_frame: np.ndarray | None = None,
                alpha: float = 1.0, colour: str = "none", max_size: int | None = None, tile: int | None = None,
                overlap: int = 32, **gatys_options: Any) -> FrameOp:
    """A frames→frames callable. ``colour='match'`` recolours each style to the clip's *first*
    frame once (per-frame recolouring would change the style every frame: flicker, and no cache);
    the luminance modes are per-frame post-processing and keep the cache."""
    from ..style.controls import to_batch

    if colour == "match":
        if first_frame is None:
            raise ValueError("colour='match' needs the clip's first frame")
        first = torch.from_numpy(first_frame).permute(2, 0, 1)[None].float() / 255
        styles = [(stylizer.style_tensor(to_batch(s), first, "match"), w) for s, w in styles]
        colour = "none"
    styles = [(str(s) if isinstance(s, Path) else s, w) for s, w in styles]
    options = dict(alpha=alpha, colour=colour, max_size=max_size, tile=tile, overlap=overlap, **gatys_options)
    batchable = stylizer.method == "adain" and not tile  # WCT's and Gatys' transforms take one image at a time

    def op(frames: torch.Tensor) -> torch.Tensor:
        if batchable:
            return stylizer.stylize_tensor(frames, styles, **options)
        return torch.cat([stylizer.stylize_tensor(f[None], styles, **options) for f in frames])

    return op

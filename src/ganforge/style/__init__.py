"""Arbitrary style transfer: AdaIN, WCT and Gatys, with alpha, colour preservation, weighted
multi-style, masks, size preservation and tiling; see docs/style.md.

``stylize(content, style, method="adain"|"wct"|"gatys", alpha=1.0, ...) -> PIL.Image`` for one
image, :class:`Stylizer` to reuse networks and style statistics across many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .controls import StyleError
from .stylizer import METHODS, Stylizer, stylize

__all__ = ["stylize", "Stylizer", "StyleError", "METHODS", "demo_section"]


def demo_section(out_dir: Path, **kwargs: Any) -> str:
    """Small offline Gatys result + HTML fragment for the demo page (see :mod:`.demo`); imported
    lazily so that ``import ganforge.style`` stays light."""
    from .demo import demo_section as _demo

    return _demo(out_dir, **kwargs)

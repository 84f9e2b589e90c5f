"""Every model family, imported so that each registers its adapter in
:data:`ganforge.export.contract.FAMILIES` (as ``ganforge/runs.py`` does for run loaders). The
imports happen when :func:`load_families` is first called, not when this module loads: family
modules import :mod:`ganforge.export.contract`, and so this package, themselves."""

from __future__ import annotations

from typing import Any


def load_families() -> Any:
    """Import every family's module (each registers its adapter); returns the registry."""
    from ..restore.inpaint import apply as inpaint_apply  # noqa: F401  (inpainter)
    from ..restore.sr import load as sr_load  # noqa: F401  (upscaler)
    from ..style import decoder_run  # noqa: F401  (style-decoder)
    from ..translate import apply as translate_apply  # noqa: F401  (translator)
    from . import generator_file  # noqa: F401  (generator)
    from .contract import FAMILIES

    return FAMILIES

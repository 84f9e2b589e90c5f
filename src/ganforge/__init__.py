"""ganforge: train GANs on your images and restyle photos, from Python or one command."""

from __future__ import annotations

from .version import __version__
from .errors import CheckpointError, DataError, GanforgeError, WeightsError

__all__ = [
    "__version__",
    "GanforgeError",
    "DataError",
    "WeightsError",
    "CheckpointError",
    "GanConfig",
    "train_gan",
    "load_generator",
    "TranslateConfig",
    "train_translator",
    "load_translator",
    "project",
    "edit",
]


def __getattr__(name: str):
    # Lazy re-exports keep `import ganforge` (and the CLI start-up) fast.
    if name == "train_gan":
        from .api import train_gan

        return train_gan
    if name == "GanConfig":
        from .config import GanConfig

        return GanConfig
    if name == "load_generator":
        from .sample import load_generator

        return load_generator
    if name in ("project", "edit"):  # editing images with a W-space generator (ganforge.editing)
        from . import editing

        return getattr(editing, name)
    if name in ("TranslateConfig", "train_translator", "load_translator"):
        from . import translate

        return getattr(translate, name)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")

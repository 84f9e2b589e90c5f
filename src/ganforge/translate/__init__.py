"""Image-to-image translation: pix2pix, CycleGAN and SPADE on the shared training loop
(``config``, ``tasks``, ``train``), inference on any image size (``apply``) and the public
pretrained-generator zoo (``zoo``).

Importing this package loads no deep-learning library; the names below load on first use.
"""

from __future__ import annotations

__all__ = ["TranslateConfig", "train_translator", "load_translator", "Translator"]


def __getattr__(name: str):
    if name == "TranslateConfig":
        from .config import TranslateConfig

        return TranslateConfig
    if name == "train_translator":
        from .train import train_translator

        return train_translator
    if name in ("load_translator", "Translator"):
        from . import apply

        return getattr(apply, name)
    raise AttributeError(f"module 'ganforge.translate' has no attribute {name!r}")

"""Network architectures. GAN generator/discriminator pairs are registered by name in
``ARCHITECTURES`` (``nets/registry.py``); each entry builds ``(G, D)`` from a :class:`GanNetSpec`."""

from __future__ import annotations

from .registry import ARCHITECTURES, GanNetSpec

__all__ = ["ARCHITECTURES", "GanNetSpec", "build_gan", "load_builtin_architectures"]


def build_gan(name: str, spec: GanNetSpec):
    """Return ``(generator, discriminator)`` for a registered architecture name."""
    load_builtin_architectures()
    return ARCHITECTURES.get(name)(spec)


def load_builtin_architectures() -> None:
    """Register the architectures that ship with ganforge (dcgan, resnet, progan, stylegan2, dfgan)."""
    from . import dcgan, dfgan, progan, resnet, stylegan2  # noqa: F401  (registration side effect)

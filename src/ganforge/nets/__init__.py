"""Network architectures. GAN generator/discriminator pairs are registered by name in
``ARCHITECTURES``; each entry builds ``(G, D)`` from a :class:`GanNetSpec`."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class GanNetSpec:
    """Shape of the problem a GAN architecture is built for."""

    resolution: int
    channels: int
    z_dim: int = 100
    num_classes: int = 0  # 0: unconditional
    width: int = 64  # base channel count (ngf/ndf)


ARCHITECTURES: Registry = Registry("architecture")


def build_gan(name: str, spec: GanNetSpec):
    """Return ``(generator, discriminator)`` for a registered architecture name."""
    _load_builtin()
    return ARCHITECTURES.get(name)(spec)


def _load_builtin() -> None:
    from . import dcgan, progan, resnet, stylegan2  # noqa: F401  (registration side effect)

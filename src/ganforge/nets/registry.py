"""The GAN architecture registry: ``ARCHITECTURES`` maps a name to a builder of ``(G, D)`` for a
:class:`GanNetSpec`. Each architecture module registers itself here; this module imports none of
them (``ganforge.nets.build_gan`` loads the built-in ones), so registering never makes a circle."""

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
    text_dim: int = 0  # > 0: conditioned on a sentence embedding of this size (text-to-image)
    resize_conv: int = 0  # dcgan G: 1 = nearest-neighbour upsampling + 3x3 conv instead of transposed convs


ARCHITECTURES: Registry = Registry("architecture")
TEXT_ONLY_ARCHITECTURES = frozenset({"dfgan"})  # built only with a sentence embedding (spec.text_dim > 0)

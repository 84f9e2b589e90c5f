"""``ganforge train --init FILE_OR_NAME``: start a GAN run from an existing network (transfer
learning) instead of random weights.

The source may be

- a published network: an official StyleGAN2-ADA ``.pkl``, a rosinality ``.pt`` or a registered
  name (``stylegan2-ffhq256``). The run trains ganforge's official-architecture generator
  (arch ``stylegan2-official``: ``G`` and ``G_ema`` from the file) and, for an official pickle
  that holds one, its ``D`` on ganforge's official-architecture discriminator
  (``published/discriminator.py``). A rosinality ``.pt`` or an export holds no usable
  discriminator: it starts fresh (ganforge's StyleGAN2 discriminator for the run's spec, ``--width``);
- a ganforge GAN run directory: ``G``, ``G_ema`` and ``D`` of its latest checkpoint (any arch);
- a ganforge generator export (``.safetensors``): ``G`` = ``G_ema`` from the file, ``D`` fresh.

:func:`apply_init` fits the options to the source (arch, resolution, z_dim, channels,
conditional), so the same command resumes the same run; the initial weights are only loaded into
a fresh run (a resumed one continues from its checkpoint: the step counter, the optimisers and
the ADA probability p continue exactly). ``run.json`` records the source (``init``) and, for the
official architecture, the generator's init kwargs (``official_kwargs``) that rebuild it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import GanforgeError
from ..nets import GanNetSpec, build_gan

OFFICIAL = "stylegan2-official"


@dataclass(frozen=True)
class InitSource:
    source: str
    kind: str  # published | run | export
    arch: str
    spec: GanNetSpec
    G: nn.Module
    G_ema: nn.Module
    D_state: dict[str, torch.Tensor] | None  # a run's discriminator, else None (fresh)
    official_kwargs: dict | None
    D: nn.Module | None = None  # a published pickle's own discriminator (official architecture)


def _stamp(source: str) -> tuple[str, int]:
    try:
        return source, os.stat(source).st_mtime_ns
    except OSError:
        return source, 0


@functools.lru_cache(maxsize=1)  # apply_init and the task read the same source once
def _read(source: str, stamp: int) -> InitSource:
    from ..published import is_published, load_published
    from ..sample import load_generator

    if is_published(source):
        gen = load_published(source)
        D = _official_D(source, Path(gen.run_dir))
        return InitSource(source, "published", OFFICIAL, gen.spec, gen.G, gen.G_ema, None,
                          dict(gen.G_ema.init_kwargs), D)
    path = Path(source)
    if not path.exists():
        raise GanforgeError(f"--init {source}: no such run directory or file, and not a published network name")
    gen = load_generator(path)
    if gen.arch == OFFICIAL:  # an export of a published network, or a run fine-tuned from one (D fresh)
        return InitSource(source, "run" if path.is_dir() else "export", OFFICIAL, gen.spec, gen.G, gen.G_ema, None,
                          dict(gen.G_ema.init_kwargs))
    if path.is_dir():
        from ..train.rundir import load_checkpoint

        _, tensors, _ = load_checkpoint(path)
        d_state = {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}
        return InitSource(source, "run", gen.arch, gen.spec, gen.G, gen.G_ema, d_state or None, None)
    return InitSource(source, "export", gen.arch, gen.spec, gen.G, gen.G_ema, None, None)


def _official_D(source: str, path: Path) -> nn.Module | None:
    """The official discriminator stored beside the generator (official .pkl files; None otherwise)."""
    from .load import read_discriminator

    return read_discriminator(path) if path.suffix.lower() == ".pkl" else None


def read_init(source: str) -> InitSource:
    """The networks of an ``--init`` source (read once per source and modification time)."""
    return _read(*_stamp(str(source)))


def apply_init(cfg: Any) -> Any:
    """``cfg`` with arch, resolution, z_dim, channels and conditional taken from its ``init``
    source; a contradicting --arch is a one-line error."""
    src = read_init(cfg.init)
    if cfg.arch not in ("dcgan", src.arch):  # dcgan: the default, i.e. not asked for
        raise GanforgeError(f"--arch {cfg.arch} does not match --init {cfg.init}, a {src.arch} network "
                            f"(omit --arch)")
    extra = {}
    if src.D_state is not None and src.arch == "dcgan":  # the source run's D normalisation (its weights' layout)
        from ..nets.dcgan import head_has_minibatch_stddev, stored_d_norm

        extra["d_norm"] = stored_d_norm(src.D_state)  # group / none: a DP run's

        extra["d_mbstd"] = "on" if head_has_minibatch_stddev(src.D_state, src.spec) else "off"
    return dataclasses.replace(cfg, arch=src.arch, resolution=src.spec.resolution, z_dim=src.spec.z_dim,
                               channels=src.spec.channels, conditional=src.spec.num_classes > 0,
                               width=cfg.width if src.arch == OFFICIAL else src.spec.width, **extra)


def init_networks(cfg: Any, spec: GanNetSpec) -> tuple[nn.Module, nn.Module, dict[str, torch.Tensor]]:
    """(G, D, G_ema's state) for a run started from ``cfg.init``; ``spec``: the run's (its data's
    classes must be the network's)."""
    src = read_init(cfg.init)
    want = dataclasses.replace(src.spec, width=spec.width) if src.arch == OFFICIAL else src.spec
    if dataclasses.astuple(spec) != dataclasses.astuple(want):
        raise GanforgeError(f"--init {cfg.init} is a network for {src.spec}, the run's data gives {spec} "
                            f"(a conditional network needs data with as many classes)")
    G = _copy(src.G)
    if src.D is not None:  # the pickle's own discriminator
        D = _copy(src.D)
        if (D.c_dim, D.img_resolution, D.img_channels) != (spec.num_classes, spec.resolution, spec.channels):
            raise GanforgeError(f"--init {cfg.init}: its discriminator is for {D.img_resolution}² x "
                                f"{D.img_channels} with {D.c_dim} classes, not the run's {spec}")
        group = D.b4.mbstd_group_size
        if group and cfg.batch_size % min(group, cfg.batch_size):
            raise GanforgeError(f"--init {cfg.init}: its discriminator compares images in groups of {group} "
                                f"(minibatch std): --batch-size must be a multiple of {group}, got {cfg.batch_size}")
    elif src.arch == OFFICIAL:
        _, D = build_gan("stylegan2", spec)  # fresh (a .pt or an export holds no discriminator)
    else:
        _, D = build_gan(src.arch, spec)
        if src.D_state is not None:
            if src.arch == "dcgan":
                from ..nets.dcgan import head_has_minibatch_stddev, without_minibatch_stddev

                if not head_has_minibatch_stddev(src.D_state, src.spec):  # --d-mbstd off (or a DP run's)
                    D = without_minibatch_stddev(D)
            if any("parametrizations" in k for k in src.D_state):  # a spectral-norm DCGAN D (--d-norm)
                from ..nets.dcgan import spectral_discriminator

                D = spectral_discriminator(D)
            elif src.arch == "dcgan":
                from ..nets.dcgan import per_example_discriminator, stored_d_norm

                norm = stored_d_norm(src.D_state)
                if norm in ("group", "none"):  # a per-example D (DP runs)
                    D = per_example_discriminator(D, norm)
            D.load_state_dict(src.D_state, strict=True)
    return G.train().requires_grad_(True), D.train().requires_grad_(True), {k: v.clone() for k, v in src.G_ema.state_dict().items()}


def _copy(net: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(net)


def run_info(cfg: Any) -> dict[str, Any]:
    """run.json fields of a run started from ``cfg.init``."""
    src = read_init(cfg.init)
    info: dict[str, Any] = {"init": {"source": src.source, "kind": src.kind, "arch": src.arch,
                                     "discriminator": ("from the source" if src.D_state is not None or src.D is not None
                                                       else "fresh")}}
    if src.D is not None:
        info["init"]["discriminator_kwargs"] = src.D.init_kwargs
    _read.cache_clear()  # the run is set up (this is read last): do not keep the source's networks
    if src.official_kwargs is not None:
        info["official_kwargs"] = src.official_kwargs
    return info

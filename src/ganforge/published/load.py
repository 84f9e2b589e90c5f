"""Load a published StyleGAN2-ADA network (an official ``.pkl``, by path or by its registered name
such as ``stylegan2-ffhq``) as a ganforge :class:`~ganforge.generator.Generator`: the pickle is read
as data (``published/unpickle.py``), ganforge's official-architecture generator
(``published/network.py``) is built from the stored init kwargs, and the stored parameters and
buffers (``w_avg`` and every ``noise_const`` included) are loaded strictly."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..errors import WeightsError
from ..generator import Generator
from ..nets import GanNetSpec
from .network import OfficialGenerator
from .unpickle import PersistentObject, read_official_pickle

G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
MAPPING_KEYS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
SUFFIXES = (".pkl", ".pt", ".pth")  # official pickles; rosinality stylegan2-pytorch checkpoints
ARCH = "stylegan2-official"  # Generator.arch: export does not rebuild it (not a registered architecture)


def generator_kwargs(obj: PersistentObject, source: str) -> dict:
    """The official ``Generator(**kwargs)`` arguments stored with a network, checked."""
    if obj.class_name != "Generator":
        raise WeightsError(f"{source}: the network is a {obj.class_name!r}, not a StyleGAN2 'Generator'")
    if len(obj.init_args) > len(G_ARGS):
        raise WeightsError(f"{source}: the generator has {len(obj.init_args)} positional arguments")
    kwargs = dict(zip(G_ARGS, obj.init_args)) | dict(obj.init_kwargs)
    missing = [k for k in G_ARGS[:5] if k not in kwargs]
    unknown = sorted(set(kwargs) - set(G_ARGS))
    if missing or unknown:
        raise WeightsError(f"{source}: generator arguments missing {missing} or not understood {unknown}")
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    if bad := sorted(set(mapping) - MAPPING_KEYS):
        raise WeightsError(f"{source}: mapping options {bad} are not supported")
    if mapping.get("activation", "lrelu") not in ("lrelu", "relu", "linear"):
        raise WeightsError(f"{source}: mapping activation {mapping['activation']!r} is not supported")
    kwargs["mapping_kwargs"], kwargs["synthesis_kwargs"] = mapping, dict(kwargs.get("synthesis_kwargs") or {})
    return kwargs


def build_official(obj: PersistentObject, source: str) -> OfficialGenerator:
    """ganforge's official-architecture generator for a stored network, its tensors loaded strictly."""
    kwargs = generator_kwargs(obj, source)
    try:
        G = OfficialGenerator(**kwargs)
    except WeightsError as exc:
        raise WeightsError(f"{source}: {exc}") from None
    state = obj.tensors()
    own = G.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(f"{source} does not fit the official StyleGAN2 generator: missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightsError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    G.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return G.eval().requires_grad_(False)


def build_discriminator(obj: PersistentObject, source: str) -> "torch.nn.Module":
    """ganforge's official-architecture discriminator for a stored ``D``, its tensors loaded strictly."""
    from .discriminator import D_KEYS, OfficialDiscriminator

    if obj.class_name != "Discriminator":
        raise WeightsError(f"{source}: the network is a {obj.class_name!r}, not a StyleGAN2 'Discriminator'")
    names = ("c_dim", "img_resolution", "img_channels")
    kwargs = dict(zip(names, obj.init_args)) | dict(obj.init_kwargs)
    if bad := sorted(set(kwargs) - D_KEYS):
        raise WeightsError(f"{source}: discriminator arguments not understood: {bad}")
    try:
        D = OfficialDiscriminator(**kwargs)
    except (WeightsError, TypeError) as exc:
        raise WeightsError(f"{source}: {exc}") from None
    state, own = obj.tensors(), D.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        raise WeightsError(f"{source} does not fit the official StyleGAN2 discriminator: missing "
                           f"{sorted(set(own) - set(state))[:4]}, unexpected {sorted(set(state) - set(own))[:4]}")
    D.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return D


def read_discriminator(path: str | os.PathLike) -> "torch.nn.Module | None":
    """The official ``D`` stored in a network pickle (None when it holds none)."""
    data = read_official_pickle(path)
    obj = data.get("D")
    return build_discriminator(obj, f"{path} (D)") if isinstance(obj, PersistentObject) else None


def load_official_pickle(path: str | os.PathLike, source_name: str | None = None) -> Generator:
    """A :class:`Generator` for an official StyleGAN2-ADA ``.pkl`` (``G_ema``; ``G`` too when stored)."""
    path = Path(path)
    data = read_official_pickle(path)
    source = source_name or str(path)
    nets = {k: v for k, v in data.items() if isinstance(v, PersistentObject)}
    if "G_ema" not in nets and "G" not in nets:
        raise WeightsError(f"{source}: the pickle holds no generator (G_ema or G), only {sorted(nets)}")
    G_ema = build_official(nets.get("G_ema") or nets["G"], f"{source} (G_ema)" if "G_ema" in nets else source)
    G = build_official(nets["G"], f"{source} (G)") if "G" in nets and "G_ema" in nets else G_ema
    return _as_generator(G_ema, G, path)


def load_rosinality_pt(path: str | os.PathLike, source_name: str | None = None) -> Generator:
    """A :class:`Generator` for a rosinality stylegan2-pytorch ``.pt`` checkpoint (its ``g_ema``;
    ``published/rosinality.py``), read with ``torch.load(weights_only=True)``."""
    from .rosinality import build_rosinality, read_rosinality

    path = Path(path)
    source = source_name or str(path)
    state, latent_avg, _ = read_rosinality(path)
    G = build_rosinality(state, latent_avg, source)
    return _as_generator(G, G, path)


def _as_generator(G_ema: OfficialGenerator, G: OfficialGenerator, path: Path) -> Generator:
    spec = GanNetSpec(resolution=G_ema.img_resolution, channels=G_ema.img_channels, z_dim=G_ema.z_dim,
                      num_classes=G_ema.c_dim, width=G_ema.w_dim)
    return Generator(G_ema, G, spec, [str(i) for i in range(G_ema.c_dim)], 0, path, arch=ARCH)


def rebuild_official(init_kwargs: dict, tensors: dict[str, torch.Tensor], source: str) -> OfficialGenerator:
    """The official-architecture generator of a ganforge export (``export/generator_file.py``):
    built from the stored ``init_kwargs``, every tensor loaded strictly."""
    obj = PersistentObject("Generator", init_kwargs=dict(init_kwargs))
    try:
        G = OfficialGenerator(**generator_kwargs(obj, source))
    except TypeError as exc:
        raise WeightsError(f"{source}: cannot build the official generator: {exc}") from None
    own = G.state_dict()
    if set(own) != set(tensors) or any(tuple(own[k].shape) != tuple(tensors[k].shape) for k in own):
        raise WeightsError(f"{source} does not fit the official StyleGAN2 generator it names "
                           f"(missing {sorted(set(own) - set(tensors))[:4]}, unexpected {sorted(set(tensors) - set(own))[:4]})")
    G.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    return G.eval().requires_grad_(False)


def official_generator(kwargs: dict) -> OfficialGenerator:
    """The official-architecture generator of a run fine-tuned from a published network (its
    run.json ``official_kwargs``), weights to be loaded by the caller."""
    return OfficialGenerator(**generator_kwargs(PersistentObject("Generator", init_kwargs=dict(kwargs)), "run.json"))


def published_names() -> dict[str, str]:
    """Registered names of published generators -> their upstream descriptions."""
    from ..weights.catalog import PUBLISHED_GANS

    return dict(PUBLISHED_GANS)


def load_published(name_or_path: str | os.PathLike) -> Generator:
    """A published network by registered name (``stylegan2-ffhq``: fetched into the weights cache,
    or the usual one-line missing-weights error offline) or by the path of an official ``.pkl`` or
    of a rosinality ``.pt`` / ``.pth`` checkpoint."""
    from ..weights import WEIGHTS, pinned, resolve

    name = str(name_or_path)
    if name in published_names():
        path = resolve(name)  # checked against the pin of its first download (or a warning: none yet)
        if pin := pinned(WEIGHTS.get(name)):
            warnings.warn(f"weights {name!r}: NVIDIA publishes no sha256; {path.name} matches the sha256 pinned at "
                          f"its first download ({pin[:16]}…). Licence: {WEIGHTS.get(name).licence.split(':')[0]}, "
                          "non-commercial use only", stacklevel=2)
        return load_official_pickle(path, source_name=f"{name} ({path})")
    path = Path(name_or_path)
    if path.suffix.lower() in SUFFIXES:
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        return load_official_pickle(path) if path.suffix.lower() == ".pkl" else load_rosinality_pt(path)
    raise WeightsError(f"{name}: not a published network name ({', '.join(published_names())}), an official "
                       ".pkl or a rosinality .pt file")


def is_published(name_or_path: str | os.PathLike) -> bool:
    """Whether :func:`load_published` reads this: a registered name, or a .pkl / .pt / .pth path."""
    return str(name_or_path) in published_names() or Path(name_or_path).suffix.lower() in SUFFIXES

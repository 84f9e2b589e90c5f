"""Shared set-up for the published-network tests: official-layout StyleGAN2-ADA pickles and
rosinality-layout ``.pt`` checkpoints written by the tests themselves (random weights; neither the
official code nor rosinality's is needed)."""

from __future__ import annotations

import collections
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from ganforge.published import OfficialGenerator
from ganforge.published.discriminator import OfficialDiscriminator
from ganforge.published.network import fir_filter

UNCOND = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
              synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=1, conv_clamp=256,
                                    architecture="skip"))
COND = dict(UNCOND, c_dim=4, img_resolution=8, img_channels=1)


@pytest.fixture
def official_modules(monkeypatch):
    """Stand-ins for ``torch_utils.persistence`` and ``dnnlib.util`` so pickle can name their globals."""
    tu, persistence = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    dn, util = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called by ganforge: it answers with its own function
        raise AssertionError("the stand-in reconstructor ran")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    tu.persistence, dn.util = persistence, util
    for name, mod in (("torch_utils", tu), ("torch_utils.persistence", persistence), ("dnnlib", dn),
                      ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)


class _Record:
    """Pickles as ``_reconstruct_persistent_obj(meta)``, the way persistent_class objects do."""

    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return self.fn, (self.meta,)


def record(module: torch.nn.Module, mods, src: str, init_kwargs=None) -> _Record:
    name = ("Generator" if isinstance(module, OfficialGenerator) else
            "Discriminator" if isinstance(module, OfficialDiscriminator) else type(module).__name__)
    state = {"training": False, "_parameters": collections.OrderedDict(module._parameters),
             "_buffers": collections.OrderedDict(module._buffers), "_non_persistent_buffers_set": set(),
             "_modules": collections.OrderedDict((k, record(v, mods, src)) for k, v in module._modules.items()),
             "_forward_hooks": collections.OrderedDict(), "_init_args": (),
             "_init_kwargs": mods.EasyDict(init_kwargs or {}), "weight_gain": np.float64(0.125)}
    return _Record(mods.reconstruct, dict(type="class", version=6, module_src=src, class_name=name, state=state))


def random_G(kwargs: dict, seed: int) -> OfficialGenerator:
    torch.manual_seed(seed)
    G = OfficialGenerator(**kwargs)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(G.named_buffers()):
            if name.endswith(("noise_strength", "bias", "w_avg")):
                t.add_(torch.randn(t.shape) * 0.3)
    return G.eval()


def d_kwargs(kwargs: dict) -> dict:
    """The official Discriminator's kwargs beside a generator's (small channels, as the tests' G)."""
    syn = kwargs["synthesis_kwargs"]
    return dict(c_dim=kwargs["c_dim"], img_resolution=kwargs["img_resolution"], img_channels=kwargs["img_channels"],
                architecture="resnet", channel_base=syn["channel_base"], channel_max=syn["channel_max"],
                num_fp16_res=syn.get("num_fp16_res", 0), conv_clamp=syn.get("conv_clamp"), cmap_dim=None,
                block_kwargs={}, mapping_kwargs={"num_layers": 2} if kwargs["c_dim"] else {},
                epilogue_kwargs={"mbstd_group_size": 4})


def random_D(kwargs: dict, seed: int) -> OfficialDiscriminator:
    """A random official-architecture discriminator for a generator's kwargs (biases non-zero)."""
    torch.manual_seed(seed)
    D = OfficialDiscriminator(**d_kwargs(kwargs))
    with torch.no_grad():
        for name, t in D.named_parameters():
            if name.endswith("bias"):
                t.add_(torch.randn(t.shape) * 0.3)
    return D.eval()


def write_pkl(path, mods, kwargs, *, src="# module source\n", extra=None, seed=0):
    """An official snapshot: G, D (seed + 2, :func:`random_D`), G_ema; returns (G, G_ema)."""
    G, G_ema = random_G(kwargs, seed), random_G(kwargs, seed + 1)
    ek = lambda d: mods.EasyDict({k: mods.EasyDict(v) if isinstance(v, dict) else v for k, v in d.items()})  # noqa: E731
    data = {"training_set_kwargs": mods.EasyDict(path="data.zip"), "G": record(G, mods, src, ek(kwargs)),
            "D": record(random_D(kwargs, seed + 2), mods, src, ek(d_kwargs(kwargs))),
            "G_ema": record(G_ema, mods, src, ek(kwargs))}
    data.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=3)
    return G, G_ema


def rosinality_state(G: OfficialGenerator) -> dict[str, torch.Tensor]:
    """An official-architecture generator's tensors under rosinality stylegan2-pytorch's names and
    shapes (``g_ema`` of its ``Generator``: ``style.N``, ``input.input``, ``conv1``, ``convs.N``,
    ``to_rgb1``, ``to_rgbs.N``, ``noises.noise_N``; conv weights ``(1, O, I, k, k)`` before its
    equalised-lr scale)."""
    sd = {k: v.detach().clone() for k, v in G.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"], out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.weight"], sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]

    def conv(src: str, dst: str, noise: int, up: bool) -> None:
        w = sd[f"{src}.weight"]
        out[f"{dst}.conv.weight"] = (w * math.sqrt(w[0].numel()))[None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = fir_filter() * 4
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise}"] = sd[f"{src}.noise_const"][None, None]

    def rgb(src: str, dst: str, up: bool) -> None:
        if up:
            out[f"{dst}.upsample.kernel"] = fir_filter() * 4
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    conv("synthesis.b4.conv1", "conv1", 0, False)
    rgb("synthesis.b4.torgb", "to_rgb1", False)
    for k, res in enumerate(G.synthesis.block_resolutions[1:]):
        conv(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1, True)
        conv(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2, False)
        rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}", True)
    return out


ROSI = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
            mapping_kwargs={"num_layers": 3, "lr_multiplier": 0.01},
            synthesis_kwargs=dict(channel_base=128, channel_max=16, architecture="skip"))

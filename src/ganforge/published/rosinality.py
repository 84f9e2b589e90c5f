"""Community StyleGAN2 checkpoints in the layout of rosinality's ``stylegan2-pytorch`` (``.pt``
files holding a ``g_ema`` state dict, as its ``train.py`` and ``convert_weight.py`` write them),
read with ``torch.load(weights_only=True)`` (no code from the file runs) and mapped onto
ganforge's official-architecture generator (``published/network.py``).

The two layouts compute the same network; the mapping is exact:

- ``style.{i}`` (``EqualLinear``, ``lr_mul`` = ``lr_mlp``, 0.01 in every rosinality script) ->
  ``mapping.fc{i-1}``; its ``PixelNorm`` is the official ``normalize_2nd_moment``;
- ``input.input`` -> ``synthesis.b4.const``; ``conv1`` / ``convs.{2k}``, ``convs.{2k+1}`` ->
  ``b4.conv1`` / ``b{2^(k+3)}.conv0``, ``.conv1``; ``to_rgb1`` / ``to_rgbs.{k}`` -> ``.torgb``;
- a modulated conv's weight ``(1, O, I, k, k)`` is stored with its equalised-lr scale
  1/sqrt(I k²) folded in (rosinality applies it before demodulating, the official code does not
  scale demodulated convs: folding it in keeps the 1e-8 of the demodulation the same);
  ``noise.weight`` -> ``noise_strength``; ``activate.bias`` -> ``bias``; ``noises.noise_{j}`` ->
  the ``noise_const`` of the j-th conv (rosinality's ``randomize_noise=False``);
- ``w_avg``: the file's ``latent_avg`` (``convert_weight.py`` stores the TF network's
  ``dlatent_avg``), else the mean of w over 10 000 latents of a fixed seed (rosinality's
  ``mean_latent`` averages 4096 random ones each time).

Channel counts are read from the tensors (``channel_multiplier`` and even trimmed networks) and
must follow ``min(channel_base / resolution, channel_max)``; a file in another layout (the
discriminator alone, SWAGAN, StyleGAN1) is a one-line refusal.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import warnings
from pathlib import Path

import torch

from ..errors import WeightsError
from .network import OfficialGenerator, fir_filter

LR_MLP = 0.01  # rosinality's Generator(lr_mlp=0.01): not stored in the file
W_AVG_SAMPLES, W_AVG_SEED = 10_000, 0


def read_rosinality(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict]:
    """(the ``g_ema`` state dict, ``latent_avg`` or None, other plain fields such as ``ada_aug_p``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace]):
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or it asks for code (refused by weights_only)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            first = "it holds objects other than tensors and plain containers (refused, nothing from it ran)"
        raise WeightsError(f"cannot read {path} as a StyleGAN2 .pt checkpoint: {first}") from None
    if isinstance(data, dict) and "g_ema" in data:
        state, latent_avg = data["g_ema"], data.get("latent_avg")
        extra = {k: v for k, v in data.items() if k in ("ada_aug_p",)}
    elif isinstance(data, dict) and "style.1.weight" in data:  # the bare g_ema state dict
        state, latent_avg, extra = data, None, {}
    else:
        keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise WeightsError(f"{path} is not a rosinality stylegan2-pytorch checkpoint (no 'g_ema' generator; "
                           f"holds {keys})")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: its 'g_ema' is not a state dict of tensors")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise WeightsError(f"{path}: its 'latent_avg' is not a tensor")
    return state, latent_avg, extra


def _channel_layout(channels: dict[int, int], source: str) -> tuple[int, int]:
    """(channel_base, channel_max) with ``channels[r] == min(base // r, max)`` for every resolution."""
    cmax = max(channels.values())
    top = max(channels)
    below = [r for r in channels if channels[r] < cmax]
    base = channels[min(below)] * min(below) if below else cmax * top
    if any(min(base // r, cmax) != c for r, c in channels.items()):
        raise WeightsError(f"{source}: channel counts {channels} do not follow min(base / resolution, max); "
                           "ganforge cannot build this network")
    return base, cmax


def _get(state: dict, key: str, source: str) -> torch.Tensor:
    try:
        return state[key]
    except KeyError:
        raise WeightsError(f"{source}: not a rosinality StyleGAN2 generator (no {key!r})") from None


def convert_rosinality(state: dict[str, torch.Tensor], source: str,
                       lr_mlp: float = LR_MLP) -> tuple[dict, dict[str, torch.Tensor]]:
    """(official ``Generator`` kwargs, official state dict without ``mapping.w_avg``) for a
    rosinality ``g_ema`` state dict; every tensor of it must be used."""
    state = {k: v.to(torch.float32) for k, v in state.items()}
    n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
    n_rgb = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    if n_mlp == 0 or "input.input" not in state:
        raise WeightsError(f"{source}: not a rosinality StyleGAN2 generator (no style.N / input.input tensors)")
    log_size = n_rgb + 2
    size, style_dim = 2 ** log_size, _get(state, "style.1.weight", source).shape[1]
    img_channels = _get(state, "to_rgb1.conv.weight", source).shape[1]
    channels = {4: _get(state, "input.input", source).shape[1]}
    for k in range(n_rgb):
        channels[2 ** (k + 3)] = _get(state, f"convs.{2 * k}.conv.weight", source).shape[1]
    base, cmax = _channel_layout(channels, source)
    kwargs = dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size, img_channels=img_channels,
                  mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_mlp),
                  synthesis_kwargs=dict(channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None,
                                        architecture="skip"))
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return _get(state, key, source)

    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"], out[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.weight"), take(f"style.{i + 1}.bias")
    f = fir_filter()

    def conv(dst: str, src: str, noise: int) -> None:
        w = take(f"{src}.conv.weight")[0]
        out[f"{dst}.weight"] = w / math.sqrt(w[0].numel())
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape([])
        out[f"{dst}.noise_const"] = take(f"noises.noise_{noise}")[0, 0]
        out[f"{dst}.bias"] = take(f"{src}.activate.bias")
        out[f"{dst}.resample_filter"] = f.clone()

    def torgb(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)

    out["synthesis.b4.const"] = take("input.input")[0]
    out["synthesis.b4.resample_filter"] = f.clone()
    conv("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(n_rgb):
        b = f"synthesis.b{2 ** (k + 3)}"
        out[f"{b}.resample_filter"] = f.clone()
        conv(f"{b}.conv0", f"convs.{2 * k}", 2 * k + 1)
        conv(f"{b}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"{b}.torgb", f"to_rgbs.{k}")
    # the FIR filters rosinality stores (blur / upsample kernels): checked, the official ones are built
    for key in [k for k in state if k.endswith((".blur.kernel", ".upsample.kernel"))]:
        used.add(key)
        if not torch.allclose(state[key], f * 4, atol=1e-6):
            raise WeightsError(f"{source}: {key} is not the [1, 3, 3, 1] filter ganforge supports")
    if rest := sorted(set(state) - used):
        raise WeightsError(f"{source}: tensors not understood as a StyleGAN2 generator: {rest[:4]}")
    return kwargs, out


@torch.no_grad()
def build_rosinality(state: dict[str, torch.Tensor], latent_avg: torch.Tensor | None, source: str,
                     lr_mlp: float = LR_MLP) -> OfficialGenerator:
    """The official-architecture generator holding a rosinality ``g_ema``, loaded strictly."""
    kwargs, tensors = convert_rosinality(state, source, lr_mlp)
    G = OfficialGenerator(**kwargs).eval().requires_grad_(False)
    own = G.state_dict()
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightsError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    if latent_avg is not None:
        latent_avg = latent_avg.reshape(-1).to(torch.float32)
        if latent_avg.numel() != G.w_dim:
            raise WeightsError(f"{source}: latent_avg has {latent_avg.numel()} values, w has {G.w_dim}")
    G.load_state_dict({**tensors, "mapping.w_avg": torch.zeros(G.w_dim)}, strict=True)
    if latent_avg is None:  # the mean w of many latents (fixed seed: the same every load)
        z = torch.randn(W_AVG_SAMPLES, G.z_dim, generator=torch.Generator().manual_seed(W_AVG_SEED))
        latent_avg = G.mapping(z, update_w_avg=False)[:, 0].mean(dim=0)
    G.mapping.w_avg.copy_(latent_avg)
    G.init_kwargs = kwargs
    return G

"""What projection, directions and editing share: the check that a generator has a W space, the
model's input image (resized and centre-cropped to its size, said how), latent files (``.npz`` and
safetensors, checked shape), and differentiable synthesis with optional noise maps."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import GanforgeError
from ..generator import Generator
from ..imageio import open_image, pil_to_tensor

W_SPACE_ARCHS = "stylegan2 (ganforge runs and exports) and published StyleGAN2-ADA networks (.pkl or registered name)"
LATENT_SUFFIXES = (".npz", ".safetensors")


class EditError(GanforgeError):
    """A bad input to projection or editing (wrong model kind, latent shape, direction name)."""


def load_model(model: str | os.PathLike | Generator, device: str = "auto", precision: str = "auto") -> Generator:
    """A W-space :class:`Generator` from a run directory, an export, a ``.pkl`` or a published name
    (or one given), moved to ``device``; any other generator is a one-line :class:`EditError`."""
    if isinstance(model, Generator):
        gen = model
    else:
        from ..sample import load_generator

        gen = load_generator(model).to(device, precision)
    require_w_space(gen)
    return gen


def require_w_space(gen: Generator) -> None:
    if not gen.w_space:
        raise EditError(f"the {gen.arch or 'given'} generator has no W space; projection and editing work for "
                        f"{W_SPACE_ARCHS}")


def num_ws(gen: Generator) -> int:
    return int(gen.G_ema.num_ws)


def w_dim(gen: Generator) -> int:
    return int(gen.G_ema.mapping.w_avg.shape[-1])


def prepare_image(image: str | os.PathLike | Image.Image | torch.Tensor, gen: Generator) -> tuple[torch.Tensor, str]:
    """The image as a 1×C×R×R tensor in [0, 1] for ``gen`` (its channels and resolution R) and a
    sentence saying what was done: the short side resized to R (Lanczos), then centre-cropped."""
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4 or x.shape[0] != 1:
            raise EditError(f"an image tensor must be C×H×W or 1×C×H×W, got {tuple(image.shape)}")
        if x.shape[1] != gen.channels:
            x = x.mean(1, keepdim=True) if gen.channels == 1 else x.expand(-1, 3, -1, -1)
        pil = None
        size = (x.shape[-1], x.shape[-2])
    else:
        mode = "L" if gen.channels == 1 else "RGB"
        pil = image.convert(mode) if isinstance(image, Image.Image) else open_image(image, mode)
        size = pil.size
    res = gen.resolution
    w, h = size
    if (w, h) == (res, res):
        note = f"{w}x{h}: used as is"
    else:
        scale = res / min(w, h)
        nw, nh = max(res, round(w * scale)), max(res, round(h * scale))
        note = f"{w}x{h} resized to {nw}x{nh} (short side to {res}) and centre-cropped to {res}x{res}"
        if pil is not None:
            pil = pil.resize((nw, nh), Image.LANCZOS)
        else:
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    if pil is not None:
        x = pil_to_tensor(pil)[None]
    top, left = (x.shape[-2] - res) // 2, (x.shape[-1] - res) // 2
    return x[..., top:top + res, left:left + res].contiguous(), note


def check_latent(gen: Generator, ws: torch.Tensor, source: str = "latent") -> torch.Tensor:
    """``ws`` as 1×num_ws×w_dim: a W latent (w_dim or 1×w_dim) is repeated over the layers; any other
    shape is a one-line :class:`EditError` naming the shape this model needs."""
    n, d = num_ws(gen), w_dim(gen)
    ws = torch.as_tensor(ws).float()
    shape = tuple(ws.shape)
    if ws.dim() == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.dim() == 2 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.dim() == 1 and ws.shape[0] == d:
        ws = ws[None].expand(n, d)
    if tuple(ws.shape) != (n, d):
        raise EditError(f"{source} has shape {shape}; this model needs W ({d},) or W+ ({n}, {d})")
    return ws[None].contiguous()


def save_latent(path: str | os.PathLike, ws: torch.Tensor, *, noise: dict[str, torch.Tensor] | None = None,
                info: dict | None = None) -> Path:
    """Write ws (1×num_ws×w_dim; and the projection's noise maps) to ``.npz`` or ``.safetensors``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix not in LATENT_SUFFIXES:
        raise EditError(f"{path}: a latent file is .npz or .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"ws": ws.detach().float().cpu().contiguous()}
    tensors |= {f"noise.{k}": v.detach().float().cpu().contiguous() for k, v in (noise or {}).items()}
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix == ".npz":
        np.savez(tmp, **{k: v.numpy() for k, v in tensors.items()}, info=np.array(json.dumps(info or {})))
    else:
        save_file(tensors, str(tmp), metadata={"format": "ganforge.latent", "info": json.dumps(info or {})})
    tmp.replace(path)
    return path


def load_latent(path: str | os.PathLike) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(ws, noise maps) from a latent file; ``w`` or ``ws`` arrays (the official projector's
    ``projected_w.npz`` holds ``w``)."""
    path = Path(path)
    if not path.is_file():
        raise EditError(f"latent file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: torch.from_numpy(data[k]) for k in data.files if k != "info"}
        else:
            from safetensors.torch import load_file

            arrays = load_file(str(path))
    except Exception as exc:
        raise EditError(f"{path}: not a readable latent file ({type(exc).__name__})") from None
    key = "ws" if "ws" in arrays else "w" if "w" in arrays else None
    if key is None:
        raise EditError(f"{path}: no 'ws' (or 'w') array in the latent file")
    return arrays[key].float(), {k[6:]: v for k, v in arrays.items() if k.startswith("noise.")}


def noise_buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The synthesis network's fixed noise maps (``noise_const``), by name."""
    return {name: buf for name, buf in net.synthesis.named_buffers() if name.endswith("noise_const")}


def with_noise(net: torch.nn.Module, noise: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """``net`` itself without ``noise``; else a copy whose noise maps are ``noise`` (shapes checked)."""
    if not noise:
        return net
    net = copy.deepcopy(net)
    bufs = noise_buffers(net)
    for name, value in noise.items():
        if name not in bufs or bufs[name].shape != value.shape:
            raise EditError(f"the latent's noise map {name!r} does not fit this model (another model's projection?)")
        bufs[name].copy_(value)
    return net


def synthesize(net: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """Differentiable images in about [0, 1] (not clamped) from ws, with the stored noise maps."""
    return net.synthesis(ws).float().add(1).div(2)

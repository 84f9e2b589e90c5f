"""Inpainting GAN on the shared training loop: masked image + mask -> completed image.

Training (:func:`train_inpainter`, run task ``inpainter``): any image folder (or a built-in
dataset name) loaded at ``load_size``, random crops and flips, and hole masks made on the fly from
the run's generator (:mod:`ganforge.restore.masks`). The hole is first filled with a smooth
multigrid interpolation of the known pixels (:func:`pyramid_fill`, ``prefill='pyramid'``); the
generator, pix2pix's U-Net on 4 channels (the pre-filled RGB + the mask), predicts a correction to
that fill (``prefill='none'``: the hole is set to 0, mid-grey, and the U-Net paints it alone). Its
output is composited (known pixels from the input, generated pixels in the hole) and a PatchGAN
judges the composite together with the mask. Losses: L1 on the hole (``lambda_hole``), a smaller L1
on the known pixels (``lambda_valid``, it keeps the raw output near the input around the hole), the
adversarial term, and optionally a VGG perceptual term (``perceptual_weight``, default 0).

Inference (:func:`load_inpainter`, :func:`inpaint_image`): images of any size (reflect-padded to
the U-Net's multiple and cropped back), masks of any size (resized to the image, nearest), and the
known pixels returned exactly (the composite is done on the 8-bit values).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, DataError, GanforgeError
from ..train.rundir import register_run_task
from ..train.adversarial import (LOSS_SCALE, EmaCopy, GeneratorDiscriminatorTask, frozen, grid, init_normal,
                                 side_effect_free, to_display)
from ..train.options import LoopOptions
from .masks import check_mask_options, make_masks

SNAPSHOT_ROWS = 4
GENERATORS = ("unet",)
NORMS = ("batch", "instance", "none")
MASK_THRESHOLD = 127  # a mask pixel brighter than this (of 255) is a hole


@dataclass
class InpaintConfig(LoopOptions):
    # data
    data: str = ""  # an image folder (searched recursively) or a built-in dataset name (fashion-mnist, ...)
    load_size: int = 256  # images are resized (short side) and centre-cropped to this square first
    crop_size: int = 256  # random training crop (square)
    channels: int = 3  # 1 (grey) or 3 (RGB)
    hflip: bool = True
    max_images: int | None = None
    # masks
    mask_kind: str = "mix"  # rect | brush | mix
    min_hole: float = 0.1  # hole area, fraction of the crop
    max_hole: float = 0.4
    # model
    generator: str = "unet"
    prefill: str = "pyramid"  # pyramid: the generator refines a smooth multigrid fill (residual); none: hole = 0
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "instance"  # batch | instance | none (instance: the same maths at training and inference)
    unet_downs: int = 0  # 0: as many as the crop allows, 5..8
    # losses
    gan_loss: str = "non-saturating"  # non-saturating | lsgan | hinge
    lambda_hole: float = 100.0  # L1 inside the hole
    lambda_valid: float = 10.0  # L1 on the known pixels (of the raw output, before compositing)
    lambda_gan: float = 1.0
    perceptual_weight: float = 0.0  # VGG feature L1 on the composite (0: off; needs a registered VGG)
    perceptual_encoder: str = "vgg19-torchvision"
    # optimisation
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema: float = 0.0
    channels_last: bool = True
    # loop (the rest: train/options.py)
    steps: int = 2000
    batch_size: int = 8

    RESUMABLE_CHANGES = LoopOptions.RESUMABLE_CHANGES + ("channels_last",)

    def resolved(self) -> "InpaintConfig":
        out = replace(self)
        if not self.unet_downs:
            out.unet_downs = max(5, min(8, int(math.log2(max(self.crop_size, 1)))))
        return out

    def multiple(self) -> int:
        return 2 ** self.resolved().unet_downs

    def validate(self) -> None:
        from ..losses import LOSSES

        check_mask_options(self.mask_kind, self.min_hole, self.max_hole)
        if self.generator not in GENERATORS:
            raise GanforgeError(f"--generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.prefill not in PREFILLS:
            raise GanforgeError(f"--prefill must be one of {', '.join(PREFILLS)}, got {self.prefill!r}")
        if self.norm not in NORMS:
            raise GanforgeError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.channels not in (1, 3):
            raise GanforgeError(f"--channels must be 1 or 3, got {self.channels}")
        if self.gan_loss not in ("non-saturating", "lsgan", "hinge"):
            raise GanforgeError(f"--gan-loss must be non-saturating, lsgan or hinge, got {self.gan_loss!r}")
        LOSSES.get(self.gan_loss)
        if self.crop_size > self.load_size:
            raise GanforgeError(f"--crop-size {self.crop_size} is larger than --load-size {self.load_size}")
        r = self.resolved()
        if not 5 <= r.unet_downs <= 9:
            raise GanforgeError(f"--unet-downs must be 5..9, got {r.unet_downs}")
        if self.crop_size % self.multiple():
            raise GanforgeError(f"--crop-size {self.crop_size} must be a multiple of {self.multiple()} "
                                f"(lower --unet-downs, or choose another crop)")
        if self.perceptual_weight > 0 and self.channels != 3:
            raise GanforgeError("--perceptual-weight needs RGB images (--channels 3); pass --perceptual-weight 0")
        for name in ("lambda_hole", "lambda_valid", "lambda_gan", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise GanforgeError(f"--{name.replace('_', '-')} must be >= 0")
        if not 0 <= self.ema < 1:
            raise GanforgeError(f"--ema must be in [0, 1), got {self.ema}")
        self.loop_config().validate()


def build_inpaint_generator(cfg: InpaintConfig) -> nn.Module:
    """pix2pix's U-Net on (image with the hole blanked, mask): channels + 1 in, channels out."""
    from ..nets.translators import UnetGenerator

    cfg = cfg.resolved()
    return UnetGenerator(cfg.channels + 1, cfg.channels, num_downs=cfg.unet_downs, ngf=cfg.ngf, norm=cfg.norm,
                         use_dropout=False)


PREFILLS = ("pyramid", "none")


PYRAMID_SMOOTHING = 16  # relaxation sweeps per pyramid level


def pyramid_fill(image: torch.Tensor, mask: torch.Tensor, smoothing: int = PYRAMID_SMOOTHING) -> torch.Tensor:
    """A smooth first guess for the hole: a multigrid membrane (harmonic) fill. The known pixels
    are averaged down an image pyramid (mask-weighted 2×2 means, push-pull as in Gortler et al.
    1996); going back up, each level's hole starts from the coarser level (bilinear) and is relaxed
    ``smoothing`` times towards the mean of its 3×3 neighbours, known pixels held fixed, which
    approaches the Laplace-equation fill classical inpainting (Navier-Stokes, Telea) approximates.
    Deterministic, no parameters, any H×W; known pixels are returned unchanged."""
    known = 1 - mask
    levels = [(image * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1:
        x, w = levels[-1]
        levels.append((F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    x, w = levels[-1]
    fill = x / w.clamp_min(1e-6)  # coarsest level: the mean of the known pixels under it
    for x, w in reversed(levels[:-1]):
        # premultiplied known colour, the rest from the coarser level, then relaxed
        fill = x + (1 - w) * F.interpolate(fill, size=x.shape[-2:], mode="bilinear", align_corners=False)
        for _ in range(smoothing):
            fill = x + (1 - w) * F.avg_pool2d(F.pad(fill, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return fill


def net_input(image: torch.Tensor, mask: torch.Tensor, prefill: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """(image in [-1, 1], mask 1 = hole) -> (the generator's input, the base its output adds to).
    ``none``: the hole set to 0 (mid-grey), base 0 (the generator paints the hole itself).
    ``pyramid``: the hole pre-filled with :func:`pyramid_fill`, and the generator predicts a
    correction to that fill (a residual), so training starts from a smooth interpolation."""
    if prefill == "pyramid":
        base = pyramid_fill(image, mask)
        return torch.cat([base, mask], 1), base
    return torch.cat([image * (1 - mask), mask], 1), torch.zeros_like(image)


def composite(image: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, hole pixels from ``generated``."""
    return image * (1 - mask) + generated * mask


def masked_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |x - y| over the pixels where ``weight`` is 1 (all channels)."""
    return ((x - y).abs() * weight).sum() / (weight.sum() * x.shape[1]).clamp_min(1.0)


# --- data ------------------------------------------------------------------------------------------

class MaskedBatches:
    """Images (random crop + flip, as :class:`~ganforge.train.batches.PairedBatches`) and hole masks,
    all drawn from the run's generator: ``{"image": [-1, 1] N×C×S×S, "mask": N×1×S×S (1 = hole)}``.
    Batch k is a function of (seed, the epoch's permutation, k) and the generator's state."""

    count_key = "image"

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, *, crop: int | None = None,
                 hflip: bool = False, mask_kind: str = "mix", min_hole: float = 0.1, max_hole: float = 0.4) -> None:
        from ..train.batches import EpochShards, check_images

        check_images("image", images, crop)
        check_mask_options(mask_kind, min_hole, max_hole)
        self.images, self.crop, self.hflip = images, crop, hflip
        self.mask_kind, self.min_hole, self.max_hole = mask_kind, min_hole, max_hole
        self.shards = EpochShards(len(images), batch_size, seed)

    def get(self, index, rank, world, generator, device) -> dict[str, torch.Tensor]:
        from ..train.batches import apply_flip, crop_at, crop_offsets, flip_mask, to_unit_range

        idx = self.shards.indices(index, rank, world)
        x = self.images[idx]
        if self.crop is not None:
            x = crop_at(x, crop_offsets(len(idx), x.shape[-2], x.shape[-1], self.crop, generator), self.crop)
        x = to_unit_range(x, device)
        if self.hflip:
            x = apply_flip(x, flip_mask(len(idx), generator, device))
        mask = make_masks(len(idx), x.shape[-2], x.shape[-1], generator, kind=self.mask_kind,
                          min_area=self.min_hole, max_area=self.max_hole, device=device)
        return {"image": x, "mask": mask}


def load_inpaint_data(cfg: InpaintConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """uint8 N×C×S×S images at ``load_size`` from ``cfg.data`` (a folder or a built-in name)."""
    from ..data import load_dataset

    if not cfg.data:
        raise DataError("--data is required: a folder of images (any layout) or a built-in dataset name")
    size = cfg.load_size
    info = {"data_source": str(cfg.data)}
    if size & (size - 1) == 0 or not Path(cfg.data).expanduser().is_dir():  # the GAN loader: powers of two
        images = load_dataset(cfg.data, resolution=size, channels=cfg.channels, max_images=cfg.max_images,
                              progress=cfg.progress).images
    else:  # a folder at any size (e.g. 286 for random 256 crops): the same decoding, no power-of-two rule
        from ..data.folder import list_images, require_folder
        from ..data.paired import decode_all, stack_images

        files = list_images(require_folder(cfg.data))[0][: cfg.max_images or None]
        arrays, bad = decode_all(files, cfg.channels, size)
        if not arrays:
            raise DataError(f"no readable images in {cfg.data}")
        images = stack_images(arrays)
        info["skipped"] = len(bad)
    return images, {**info, "images": len(images)}


# --- task ------------------------------------------------------------------------------------------

class _Perceptual(nn.Module):
    """L1 between VGG features (relu1_1, relu2_1, relu3_1) of two [-1, 1] RGB batches."""

    LAYERS = ("relu1_1", "relu2_1", "relu3_1")

    def __init__(self, encoder: str) -> None:
        super().__init__()
        from ..nets.vgg import load_vgg

        try:
            self.vgg = load_vgg(encoder)
        except GanforgeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise type(exc)(f"the perceptual loss needs VGG weights ({first}); "
                            f"fetch them or pass --perceptual-weight 0") from None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.vgg((x.float() + 1) / 2, self.LAYERS)
        with torch.no_grad():
            fy = self.vgg((y.float() + 1) / 2, self.LAYERS)
        return sum(F.l1_loss(fx[k], fy[k]) for k in self.LAYERS) / len(self.LAYERS)


class InpaintTask(GeneratorDiscriminatorTask):
    """U-Net G on (masked image, mask), PatchGAN D on (composite, mask)."""

    name = "inpainter"
    snapshot_columns = ["masked input", "output", "real"]

    def __init__(self, cfg: InpaintConfig, device: torch.device, fixed: dict[str, torch.Tensor]) -> None:
        from ..losses import LOSSES
        from ..nets.translators import PatchDiscriminator

        self.cfg, self.device = cfg, device
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.loss = LOSSES.get(cfg.gan_loss)
        self.d_scale, self.g_scale = LOSS_SCALE[cfg.gan_loss]
        torch.manual_seed(cfg.seed)  # network initialisation
        G = init_normal(build_inpaint_generator(cfg))
        if cfg.prefill == "pyramid":  # start exactly at the pre-fill: the correction's last layer begins at zero
            last = G.model.model[3]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.G = self._place(G)
        self.D = self._place(init_normal(PatchDiscriminator(cfg.channels + 1, cfg.ndf, cfg.n_layers_d, norm=cfg.norm)))
        self.ema = EmaCopy(self.G, cfg.ema)
        fused = device.type in ("cpu", "cuda")
        adam = lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=fused)  # noqa: E731
        self.opt = {"G": adam(self.G.parameters(), cfg.lr_g), "D": adam(self.D.parameters(), cfg.lr_d)}
        self.perceptual = _Perceptual(cfg.perceptual_encoder).to(device) if cfg.perceptual_weight > 0 else None
        self.fixed = fixed

    def _place(self, m: nn.Module) -> nn.Module:
        return m.to(self.device, memory_format=self.memory)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory)

    def step(self, ctx) -> dict[str, float]:
        cfg = self.cfg
        batch = ctx.next_batch()
        real, mask = self._fmt(batch["image"]), self._fmt(batch["mask"])
        with ctx.autocast():
            inp, base = net_input(real, mask, cfg.prefill)
            out = base + self.G(self._fmt(inp)).float()
            comp = composite(real, out.float(), mask)
            d_real = self.D(torch.cat([real, mask], 1))
            d_fake = self.D(torch.cat([comp.detach(), mask], 1))
            loss_d = self.d_scale * self.loss.d_loss(d_real.float(), d_fake.float(), 1.0)
        ctx.optimize(loss_d, "D", [self.D])

        with frozen(self.D), ctx.autocast():
            loss_gan = self.g_scale * self.loss.g_loss(self.D(torch.cat([comp, mask], 1)).float())
            out32 = out.float()
            hole = masked_l1(out32, real, mask)
            valid = masked_l1(out32, real, 1 - mask)
            loss_g = cfg.lambda_gan * loss_gan + cfg.lambda_hole * hole + cfg.lambda_valid * valid
            if self.perceptual is not None:
                perc = self.perceptual(comp, real)
                loss_g = loss_g + cfg.perceptual_weight * perc
        if ctx.optimize(loss_g, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        logs = {"loss_G_gan": float(loss_gan.detach()), "loss_hole_L1": float(hole.detach()),
                "loss_valid_L1": float(valid.detach()), "loss_D": float(loss_d.detach()),
                "D_real": float(d_real.detach().float().mean()), "D_fake": float(d_fake.detach().float().mean())}
        if self.perceptual is not None:
            logs["loss_perceptual"] = float(perc.detach())
        return logs

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of masked input (hole shown mid-grey) | output (composite) | real."""

        G = self.ema.copy or self.G
        real, mask = self.fixed["image"], self.fixed["mask"]
        with side_effect_free(G), ctx.autocast():
            inp, base = net_input(real, mask, self.cfg.prefill)
            out = (base + G(self._fmt(inp)).float()).clamp(-1, 1)
        return grid([to_display(real * (1 - mask)), to_display(composite(real, out, mask)), to_display(real)])


def _fixed_inputs(images: torch.Tensor, cfg: InpaintConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """The first few images, centre-cropped, with masks from a generator of their own (the run's
    generator is never touched by snapshots)."""
    from ..train.batches import to_unit_range

    c = cfg.crop_size
    y0, x0 = (images.shape[-2] - c) // 2, (images.shape[-1] - c) // 2
    x = to_unit_range(images[:SNAPSHOT_ROWS, :, y0:y0 + c, x0:x0 + c], device)
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    mask = make_masks(len(x), c, c, g, kind=cfg.mask_kind, min_area=cfg.min_hole, max_area=cfg.max_hole,
                      device=device)
    return {"image": x, "mask": mask}


def train_inpainter(config: InpaintConfig | None = None, *, out: str | os.PathLike, resume: str = "auto",
                    device: str = "auto", handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) an inpainting GAN into run directory ``out``; returns the summary.
    run.json's task is ``inpainter``: :func:`load_inpainter` and ``ganforge inpaint`` load it."""
    from ..train.run import Prepared, run_task

    cfg = replace(config or InpaintConfig(), **overrides)
    cfg.validate()

    def prepare(accelerator) -> Prepared:
        t0 = time.perf_counter()
        images, info = load_inpaint_data(cfg)
        batches = MaskedBatches(images, cfg.batch_size, cfg.seed, crop=cfg.crop_size, hflip=cfg.hflip,
                                mask_kind=cfg.mask_kind, min_hole=cfg.min_hole, max_hole=cfg.max_hole)
        task = InpaintTask(cfg, accelerator.device, _fixed_inputs(images, cfg, accelerator.device))
        curves = {"L1": ["loss_hole_L1", "loss_valid_L1"], "GAN": ["loss_G_gan", "loss_D"],
                  "D outputs": ["D_real", "D_fake"]}
        run_info = {"generator": cfg.generator, "channels": cfg.channels, "multiple": cfg.multiple(),
                    "norm": cfg.norm, "resolved": asdict(cfg.resolved()), **info}
        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(), run_info=run_info,
                        curve_groups=curves, summary={"data_seconds": time.perf_counter() - t0, **info})

    return run_task("inpainter", cfg, Path(out), prepare, resumable=InpaintConfig.RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals)


# --- inference -------------------------------------------------------------------------------------

@dataclass
class Inpainter:
    """A trained inpainting generator with what it needs to be used correctly."""

    net: nn.Module
    channels: int
    multiple: int
    name: str = ""
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    prefill: str = "none"

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Inpainter":
        from ..device import resolve_device, resolve_precision

        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net = self.net.to(self.device, memory_format=torch.channels_last)
        return self

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """N×C×H×W in [0, 1] and N×1×H×W (1 = hole) -> the network's raw output, N×C×H×W in [0, 1]
        (not composited; any H×W)."""
        from ..device import autocast
        from ..imageops import crop_to, pad_to_multiple

        h, w = image.shape[-2:]
        x, base = net_input(image.to(self.device) * 2 - 1, mask.to(self.device).float(), self.prefill)
        x = pad_to_multiple(x, self.multiple).contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            out = self.net(x)
        return (base + crop_to(out.float(), (h, w))).add(1).div(2).clamp(0, 1).cpu()


def load_inpainter(run_dir: str | os.PathLike, *, checkpoint: str = "latest", ema: bool = True,
                   device: str = "auto", precision: str = "auto") -> Inpainter:
    """An :class:`Inpainter` from a ``ganforge train-inpainter`` run directory."""
    from ..train.rundir import load_checkpoint, require_task
    from ..train import checkpoint as ckpt
    from ..train.run import CONFIG_FILE, load_options

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory (train one with ganforge train-inpainter)")
    meta = require_task(run_dir, "inpainter")
    cfg = load_options(InpaintConfig, run_dir / CONFIG_FILE)
    path, tensors, state = load_checkpoint(run_dir, checkpoint)
    net = build_inpaint_generator(cfg)
    key = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
    ckpt.restore_modules({key: net}, tensors, path)
    net.eval()
    model = Inpainter(net, channels=cfg.channels, multiple=int(meta.get("multiple", cfg.multiple())),
                      prefill=cfg.prefill, name=f"{run_dir} (inpainter, step {state['step']})")
    return model.to(device, precision)


def _read_image(image: Any, mode: str) -> np.ndarray:
    """A path or PIL image -> uint8 H×W×C in ``mode`` ('L' or 'RGB')."""
    from PIL import Image

    from ..imageio import open_image

    img = image if isinstance(image, Image.Image) else open_image(image, mode)
    arr = np.asarray(img.convert(mode), dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def read_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A mask (path, PIL image, array or tensor; white / non-zero = hole) -> bool H×W at ``size``
    (H, W), resized with nearest neighbour when its size differs. A file that is not an image is a
    one-line DataError."""
    from PIL import Image

    from ..imageio import open_image

    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if isinstance(mask, np.ndarray):
        arr = np.asarray(mask)
        while arr.ndim > 2:  # N×1×H×W, 1×H×W, H×W×C: reduce to H×W
            arr = arr[0] if arr.shape[0] == 1 else arr.max(axis=-1 if arr.shape[-1] in (1, 3, 4) else 0)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype.kind == "f" and arr.max(initial=0) <= 1.0:
            arr = (arr * 255).round()
        pil = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    else:
        pil = mask if isinstance(mask, Image.Image) else open_image(mask, "L")
        pil = pil.convert("L")
    h, w = size
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.NEAREST)
    return np.asarray(pil) > MASK_THRESHOLD


def inpaint_image(model: Inpainter, image: Any, mask: Any) -> Any:
    """Fill the hole of ``image`` (a path or PIL image -> PIL image; a C×H×W float tensor in [0, 1] ->
    a tensor) where ``mask`` is white (> 127 of 255; any size, resized nearest to the image).
    Output size == input size; the known pixels are returned exactly (for images: byte-identical
    8-bit values; the image is first converted to the model's mode, RGB or L); a mask without a
    hole returns the input unchanged."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        if image.dim() != 3:
            raise GanforgeError(f"inpaint_image takes one C×H×W image tensor, got shape {tuple(image.shape)}")
        hole = torch.from_numpy(read_mask(mask, tuple(image.shape[-2:])))
        if not hole.any():
            return image.clone()
        x = image.float()
        if x.shape[0] != model.channels:
            x = x.mean(0, keepdim=True) if model.channels == 1 else x.expand(3, -1, -1)
        m = hole[None, None].float()
        out = model.fill(x[None], m)[0]
        if out.shape[0] != image.shape[0]:
            out = out.expand(image.shape[0], -1, -1)
        return torch.where(hole[None], out.to(image.dtype), image)
    mode = "L" if model.channels == 1 else "RGB"
    arr = _read_image(image, mode)
    hole = read_mask(mask, arr.shape[:2])
    if not hole.any():
        return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
    m = torch.from_numpy(hole)[None, None].float()
    out = model.fill(x, m)[0]
    filled = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    result = np.where(hole[..., None], filled, arr)
    return Image.fromarray(result[..., 0] if mode == "L" else result, mode)


def _load_inpainter_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest"):
    return load_inpainter(run_dir, checkpoint=checkpoint_name)


register_run_task("inpainter", _load_inpainter_run)

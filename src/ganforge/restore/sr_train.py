"""Train a super-resolution network (RRDBNet or SRResNet) the ESRGAN way, on the generic loop.

One run, two phases, chosen by the step alone (so a run resumes exactly in either phase and
across the boundary):

1. steps ``[0, psnr_steps)``: L1 only (the "PSNR-oriented" network: ESRNet / SRResNet); the
   discriminator is not touched; the generator uses its own Adam (``G_psnr``, lr ``lr_psnr``).
2. steps ``[psnr_steps, steps)``: ``l1_weight`` × L1 + ``perceptual_weight`` × VGG feature L1 +
   ``gan_weight`` × adversarial loss (relativistic average, as ESRGAN, or non-saturating), with a
   PatchGAN discriminator; the generator switches to a fresh Adam (``G``, lr ``lr_g``), as ESRGAN
   starts its GAN stage from the PSNR model with new optimisers.

Images are RGB in [0, 1] (the range of :mod:`ganforge.nets.rrdb`); pairs are made on the fly by
:class:`ganforge.restore.degrade.DegradedBatches`. run.json's task is ``upscaler``:
``ganforge upscale --model RUN`` and :func:`ganforge.restore.zoo.build_upscaler` load the run's
generator (the EMA copy when there is one), and ``RUN/upscaler.safetensors`` holds it in the
ESRGAN/basicsr key layout when the run finishes.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, GanforgeError, WeightsError
from ..train.rundir import register_run_task
from ..train.adversarial import EmaCopy, GeneratorDiscriminatorTask, frozen, side_effect_free
from ..train.options import LoopOptions
from .degrade import DEGRADATIONS, DegradedBatches, degrade

ARCHS = ("rrdb", "srresnet")
GAN_LOSSES = ("ragan", "non-saturating")
NB_DEFAULT = {"rrdb": 23, "srresnet": 16}  # ESRGAN's RRDBNet; basicsr's MSRResNet
# The perceptual loss is multiplied by this per input normalisation, so that --perceptual-weight
# means the same for every registered VGG19: Caffe-scale inputs (0..255 minus the mean) give
# features about 255 x 0.226 = 57.6 times those of ImageNet-normalised inputs ((x - mean) / std,
# std about 0.226), for which ESRGAN's weight 1 was set.
PERCEPTUAL_SCALE = {"imagenet": 1.0, "caffe": 1 / 57.6, "caffe-bgr": 1 / 57.6, "none": 1.0}
SNAPSHOT_ROWS = 4
EXPORT_FILE = "upscaler.safetensors"


@dataclass
class SRConfig(LoopOptions):
    # data
    data: str = ""  # image folder (cut into tile_size tiles at native resolution) or a built-in dataset name
    tile_size: int = 256  # folders: images are cut into non-overlapping tiles of this size; datasets: resolution
    max_images: int | None = None  # keep the first N images (before tiling)
    scale: int = 4
    crop: int = 128  # HR training crop (LR crop = crop / scale)
    degradation: str = "bicubic"  # bicubic | blur | noise | jpeg | classic | realistic
    hflip: bool = True
    # model
    arch: str = "rrdb"  # rrdb (ESRGAN RRDBNet) | srresnet (basicsr MSRResNet)
    nf: int = 64
    nb: int = 0  # 0: the arch's own (RRDBNet 23, SRResNet 16)
    gc: int = 32  # RRDBNet growth channels
    ndf: int = 64  # discriminator width
    d_layers: int = 3  # PatchGAN depth
    d_norm: str = "batch"  # batch | instance | none
    # losses (phase 2; phase 1 is L1 alone)
    psnr_steps: int = 1000  # L1-only pre-training steps; the GAN phase runs from here to --steps
    l1_weight: float = 0.01  # ESRGAN
    perceptual_weight: float = 1.0
    perceptual_encoder: str = "vgg19-torchvision"  # registered VGG19 name or a weights file
    perceptual_layers: str = "relu1_2:0.1,relu2_2:0.1,relu3_4:1,relu4_4:1,relu5_1:1"
    gan_weight: float = 0.005  # ESRGAN
    gan_loss: str = "ragan"  # ragan (relativistic average, ESRGAN) | non-saturating
    # optimisation
    lr_psnr: float = 2e-4
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    ema: float = 0.999  # EMA decay of the generator (0: off); the EMA copy is what is loaded
    # loop (the rest: train/options.py)
    steps: int = 2000
    batch_size: int = 16

    def resolved(self) -> "SRConfig":
        out = replace(self)
        out.nb = self.nb or NB_DEFAULT.get(self.arch, 0)
        return out

    def layer_weights(self) -> dict[str, float]:
        from ..nets.vgg import LAYERS

        out: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in self.perceptual_layers.split(","))):
            name, _, weight = item.partition(":")
            try:
                out[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise GanforgeError(f"--perceptual-layers: bad weight in {item!r} (use relu3_4:1,relu4_4:0.5)") from None
            if name.strip() not in LAYERS:
                raise GanforgeError(f"--perceptual-layers: unknown layer {name!r}; choose from {', '.join(LAYERS)}")
        if not out:
            raise GanforgeError("--perceptual-layers is empty")
        return out

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise GanforgeError(f"--arch must be rrdb or srresnet, got {self.arch!r}")
        if self.scale not in (2, 4):
            raise GanforgeError(f"--scale must be 2 or 4, got {self.scale}")
        if self.degradation not in DEGRADATIONS:
            raise GanforgeError(f"--degradation must be one of {', '.join(DEGRADATIONS)}, got {self.degradation!r}")
        if self.crop < 1 or self.crop % self.scale:
            raise GanforgeError(f"--crop {self.crop} must be a positive multiple of --scale {self.scale}")
        if self.arch == "rrdb" and self.scale == 2 and (self.crop // self.scale) % 2:
            raise GanforgeError(f"--crop {self.crop}: the ×2 RRDBNet needs an even LR crop (crop a multiple of 4)")
        if self.crop > self.tile_size:
            raise GanforgeError(f"--crop {self.crop} is larger than --tile-size {self.tile_size}")
        if self.nf < 1 or self.nb < 0 or self.gc < 1 or self.ndf < 1 or self.d_layers < 1:
            raise GanforgeError("--nf, --gc, --ndf and --d-layers must be at least 1, --nb at least 0")
        if self.d_norm not in ("batch", "instance", "none"):
            raise GanforgeError(f"--d-norm must be batch, instance or none, got {self.d_norm!r}")
        if self.gan_loss not in GAN_LOSSES:
            raise GanforgeError(f"--gan-loss must be ragan or non-saturating, got {self.gan_loss!r}")
        if self.psnr_steps < 0:
            raise GanforgeError("--psnr-steps must be at least 0")
        for name in ("l1_weight", "perceptual_weight", "gan_weight"):
            if getattr(self, name) < 0:
                raise GanforgeError(f"--{name.replace('_', '-')} must be >= 0")
        if self.gan_weight > 0 and self.psnr_steps < self.steps and d_output_size(self.crop, self.d_layers) < 1:
            need = next(c for c in range(self.scale, 4096, self.scale) if d_output_size(c, self.d_layers) >= 1)
            raise GanforgeError(f"--crop {self.crop} is too small for a {self.d_layers}-layer discriminator "
                                f"(needs at least {need}); lower --d-layers or raise --crop")
        if not 0 <= self.ema < 1:
            raise GanforgeError(f"--ema must be in [0, 1), got {self.ema}")
        if self.perceptual_weight > 0:
            self.layer_weights()
        self.loop_config().validate()


def d_output_size(size: int, n_layers: int) -> int:
    """Side of the PatchGAN's logit map for a ``size`` input (< 1: the input is too small)."""
    for _ in range(n_layers):  # 4x4 stride-2 convs, padding 1
        if size + 2 < 4:
            return 0
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # 4x4 stride-1 convs, padding 1
        size = size - 1
    return size


# -- networks --------------------------------------------------------------------------------------

def build_sr_generator(cfg: SRConfig) -> nn.Module:
    """The generator of a config (basicsr key layout, RGB [0, 1] -> RGB [0, 1])."""
    from ..nets.rrdb import RRDBNet, SRResNet

    cfg = cfg.resolved()
    if cfg.arch == "rrdb":
        return RRDBNet(3, 3, nf=cfg.nf, nb=cfg.nb, gc=cfg.gc, scale=cfg.scale)
    return SRResNet(3, 3, nf=cfg.nf, nb=cfg.nb, scale=cfg.scale)


def load_perceptual(cfg: SRConfig, device: torch.device) -> nn.Module | None:
    """The frozen VGG19 of the perceptual loss (None when its weight is 0); missing weights are a
    one-line error that names both ways out."""
    if cfg.perceptual_weight <= 0:
        return None
    from ..nets.vgg import load_vgg

    try:
        vgg = load_vgg(cfg.perceptual_encoder)
    except (WeightsError, KeyError, GanforgeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"the perceptual loss needs VGG19 weights ({cfg.perceptual_encoder}): {first} -- or pass "
                           f"--perceptual-weight 0 (no perceptual loss)") from exc
    return vgg.to(device).eval().requires_grad_(False)


def relativistic_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN's RaGAN: real should look more real than the average fake, and vice versa."""
    real, fake = real.float(), fake.float()
    return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())


def relativistic_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())


class SRTask(GeneratorDiscriminatorTask):
    """Two-phase ESRGAN training (see the module docstring) as a :class:`ganforge.train.task.Task`."""

    name = "upscaler"
    snapshot_columns = ["bicubic", "super-resolved", "ground truth"]

    def __init__(self, cfg: SRConfig, device: torch.device, fixed: dict[str, torch.Tensor],
                 perceptual: nn.Module | None = None) -> None:
        from ..nets.translators import PatchDiscriminator, init_weights

        self.cfg, self.device, self.fixed = cfg.resolved(), device, fixed
        torch.manual_seed(cfg.seed)  # network initialisation
        self.G = build_sr_generator(cfg).to(device)
        self.D = PatchDiscriminator(3, cfg.ndf, cfg.d_layers, norm=cfg.d_norm)
        init_weights(self.D, "normal", 0.02)
        self.D = self.D.to(device)
        self.ema = EmaCopy(self.G, cfg.ema)
        fused = device.type in ("cpu", "cuda")
        betas = (cfg.beta1, cfg.beta2)
        self.opt = {"G_psnr": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_psnr, betas=betas, fused=fused),
                    "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused),
                    "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)}
        self.perceptual = perceptual
        self.layers = cfg.layer_weights() if perceptual is not None else {}
        self.perceptual_scale = PERCEPTUAL_SCALE.get(getattr(perceptual, "normalisation", "imagenet"), 1.0)

    def phase(self, step: int) -> str:
        """'psnr' before ``psnr_steps``, then 'gan': a function of the step only."""
        return "psnr" if step < self.cfg.psnr_steps else "gan"

    def perceptual_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        names = list(self.layers)
        f_sr = self.perceptual(sr, names)
        with torch.no_grad():
            f_hr = self.perceptual(hr, names)
        total = sum(w * F.l1_loss(f_sr[n].float(), f_hr[n].float()) for n, w in self.layers.items())
        return self.perceptual_scale * total

    def step(self, ctx) -> dict[str, float]:

        cfg = self.cfg
        batch = ctx.next_batch()
        lr, hr = batch["lr"], batch["hr"]
        if self.phase(ctx.step) == "psnr":
            with ctx.autocast():
                sr = self.G(lr)
            loss = F.l1_loss(sr.float(), hr)
            if ctx.optimize(loss, "G_psnr", [self.G]):
                self.ema.update(self.G, ctx.step)
            return {"loss_L1": float(loss.detach())}
        out: dict[str, float] = {}
        with frozen(self.D), ctx.autocast():
            sr = self.G(lr)
            l1 = F.l1_loss(sr.float(), hr)
            loss = cfg.l1_weight * l1
            if self.perceptual is not None:
                percep = self.perceptual_loss(sr, hr)
                loss = loss + cfg.perceptual_weight * percep
                out["loss_percep"] = float(percep.detach())
            if cfg.gan_weight > 0:
                d_fake = self.D(sr * 2 - 1)
                if cfg.gan_loss == "ragan":
                    with torch.no_grad():
                        d_real = self.D(hr * 2 - 1)
                    gan = relativistic_g_loss(d_real, d_fake)
                else:
                    gan = F.softplus(-d_fake.float()).mean()
                loss = loss + cfg.gan_weight * gan
                out["loss_G_gan"] = float(gan.detach())
        if ctx.optimize(loss, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        out["loss_L1"] = float(l1.detach())
        if cfg.gan_weight > 0:
            with ctx.autocast():
                d_real = self.D(hr * 2 - 1)
                d_fake = self.D(sr.detach() * 2 - 1)
                if cfg.gan_loss == "ragan":
                    loss_d = relativistic_d_loss(d_real, d_fake)
                else:
                    loss_d = 0.5 * (F.softplus(-d_real.float()).mean() + F.softplus(d_fake.float()).mean())
            ctx.optimize(loss_d, "D", [self.D])
            out.update(loss_D=float(loss_d.detach()), D_real=float(d_real.detach().float().mean()),
                       D_fake=float(d_fake.detach().float().mean()))
        return out

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of bicubic | super-resolved | ground truth (fixed held-in crops)."""
        from torchvision.utils import make_grid


        G = self.ema.copy or self.G
        lr, hr = self.fixed["lr"], self.fixed["hr"]
        with side_effect_free(G), ctx.autocast():
            sr = G(lr)
        up = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False)
        tiles = torch.stack([t.detach().float().clamp(0, 1).cpu() for t in (up, sr, hr)], 1).flatten(0, 1)
        return make_grid(tiles, nrow=3, padding=2, pad_value=1.0)


# -- data ------------------------------------------------------------------------------------------

def _tiles(image: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [image[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def load_sr_images(cfg: SRConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """uint8 N×3×T×T training tiles: a folder's images cut into non-overlapping ``tile_size``
    tiles at their native resolution (an image smaller than a tile is first resized up so that its
    short side fits one), or a built-in dataset (``fashion-mnist``, ...) at ``tile_size``."""
    if not cfg.data:
        raise DataError("--data is required: a folder of images (or a built-in dataset name such as fashion-mnist)")
    from ..data import load_dataset
    from ..data.builtin import parse_builtin

    size = cfg.tile_size
    if parse_builtin(str(cfg.data)) is not None:
        ds = load_dataset(cfg.data, resolution=size, channels=3, max_images=cfg.max_images, progress=False)
        return ds.images, {"data_source": str(cfg.data), "images": len(ds.images), "tiles": len(ds.images)}
    from PIL import Image

    from ..data.folder import list_images, require_folder
    from ..imageio import IMAGE_SUFFIXES, open_image

    root = require_folder(cfg.data)
    files, _ = list_images(root)
    if not files:
        raise DataError(f"no images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)})")
    if cfg.max_images:
        files = files[: cfg.max_images]
    tiles: list[np.ndarray] = []
    skipped: list[str] = []
    for path in files:
        try:
            img = open_image(path, "RGB")
        except Exception as exc:  # noqa: BLE001 -- one unreadable file is skipped, not fatal
            skipped.append(f"{path}: {exc}")
            continue
        if min(img.size) < size:
            k = size / min(img.size)
            img = img.resize((max(size, round(img.width * k)), max(size, round(img.height * k))), Image.BICUBIC)
        tiles += _tiles(np.asarray(img, np.uint8), size)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) (first: {skipped[0]})", stacklevel=3)
    if not tiles:
        raise DataError(f"none of the images in {root} could be read")
    from ..data.dataset import check_memory

    check_memory(len(tiles), 3, size, str(root))
    images = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
    return images, {"data_source": str(root), "images": len(files) - len(skipped), "tiles": len(tiles)}


def fixed_pairs(images: torch.Tensor, cfg: SRConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """Centre crops of the first few tiles and their LR versions (a generator of their own, seeded
    from the run's seed: the run's generator is not touched) for the sample grids."""
    c = cfg.crop
    y0, x0 = (images.shape[-2] - c) // 2, (images.shape[-1] - c) // 2
    hr = images[:SNAPSHOT_ROWS, :, y0:y0 + c, x0:x0 + c].to(device).float().div(255)
    g = torch.Generator(device=device).manual_seed(cfg.seed + 12345)
    return {"lr": degrade(hr, cfg.scale, cfg.degradation, g), "hr": hr}


# -- training and loading --------------------------------------------------------------------------

def train_upscaler(config: SRConfig | None = None, *, out: str | os.PathLike, resume: str = "auto",
                   device: str = "auto", handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) a super-resolution run into ``out``; returns the summary. run.json's task
    is ``upscaler``; on completion ``out/upscaler.safetensors`` holds the generator (EMA if any)."""
    from ..train.run import Prepared, run_task

    cfg = replace(config or SRConfig(), **overrides)
    cfg.validate()
    resolved = cfg.resolved()

    def prepare(accelerator) -> Prepared:
        t0 = time.perf_counter()
        dev = accelerator.device
        perceptual = load_perceptual(resolved, dev) if resolved.psnr_steps < resolved.steps else None
        images, info = load_sr_images(resolved)
        if images.shape[-1] < resolved.crop or images.shape[-2] < resolved.crop:
            raise DataError(f"--crop {resolved.crop} is larger than the images ({images.shape[-2]}×{images.shape[-1]})")
        batches = DegradedBatches(images, resolved.batch_size, resolved.seed, crop=resolved.crop, scale=resolved.scale,
                                  degradation=resolved.degradation, hflip=resolved.hflip)
        task = SRTask(resolved, dev, fixed_pairs(images, resolved, dev), perceptual)
        curves = {"losses": ["loss_L1", "loss_percep", "loss_G_gan", "loss_D"], "D outputs": ["D_real", "D_fake"]}
        run_info = {"arch": resolved.arch, "scale": resolved.scale, "nf": resolved.nf, "nb": resolved.nb,
                    "gc": resolved.gc, "psnr_steps": resolved.psnr_steps, "degradation": resolved.degradation,
                    "range": "[0, 1]", "resolved": asdict(resolved), **info}

        def write_outputs(loop) -> None:
            from safetensors.torch import save_file

            net = task.ema.copy or task.G
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            target = Path(out) / EXPORT_FILE
            tmp = target.with_name(target.name + ".part")
            save_file(state, str(tmp), metadata={"step": str(loop.step), "scale": str(resolved.scale)})
            tmp.replace(target)  # a file that exists is complete

        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(), run_info=run_info,
                        curve_groups=curves, write_outputs=write_outputs,
                        summary={"data_seconds": time.perf_counter() - t0, **info})

    return run_task("upscaler", cfg, Path(out), prepare, resumable=SRConfig.RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals)


def load_upscaler_run(run_dir: str | os.PathLike, *, checkpoint_name: str = "latest", ema: bool = True) -> nn.Module:
    """The generator of a ``train-upscaler`` run at a checkpoint ('latest', 'best', 'step-N'):
    the EMA copy when the run keeps one (and ``ema``), in eval mode on the CPU."""
    from ..train.rundir import load_checkpoint, require_task
    from ..train import checkpoint
    from ..train.run import CONFIG_FILE, load_options

    run_dir = Path(run_dir)
    require_task(run_dir, "upscaler")
    cfg = load_options(SRConfig, run_dir / CONFIG_FILE)
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    net = build_sr_generator(cfg)
    key = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
    checkpoint.restore_modules({key: net}, tensors, path)
    net.step = int(state.get("step", 0))
    net.source = f"{run_dir} ({cfg.arch} ×{cfg.scale}, {key}, step {net.step})"
    return net.eval()


def _load_upscaler_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest") -> nn.Module:
    return load_upscaler_run(run_dir, checkpoint_name=checkpoint_name)


register_run_task("upscaler", _load_upscaler_run)

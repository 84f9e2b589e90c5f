"""Options of a super-resolution run: one dataclass, saved as config.json and compared on resume,
and the generator it builds (RRDBNet or SRResNet, basicsr key layout)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ...errors import GanforgeError
from ...train.options import LoopOptions
from ..degrade import DEGRADATIONS

ARCHS = ("rrdb", "srresnet")
GAN_LOSSES = ("ragan", "non-saturating")
NB_DEFAULT = {"rrdb": 23, "srresnet": 16}  # ESRGAN's RRDBNet; basicsr's MSRResNet


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
        from ...nets.vgg import LAYERS

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


def build_sr_generator(cfg: SRConfig) -> nn.Module:
    """The generator of a config (basicsr key layout, RGB [0, 1] -> RGB [0, 1])."""
    from ...nets.rrdb import RRDBNet, SRResNet

    cfg = cfg.resolved()
    if cfg.arch == "rrdb":
        return RRDBNet(3, 3, nf=cfg.nf, nb=cfg.nb, gc=cfg.gc, scale=cfg.scale)
    return SRResNet(3, 3, nf=cfg.nf, nb=cfg.nb, scale=cfg.scale)

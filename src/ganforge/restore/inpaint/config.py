"""Options of an inpainting run: one dataclass, saved as config.json and compared on resume, and
the generator it builds (pix2pix's U-Net on the image with its hole + the mask)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import nn

from ...errors import GanforgeError
from ...train.options import LoopOptions
from ..masks import check_mask_options
from .ops import PREFILLS

GENERATORS = ("unet",)
NORMS = ("batch", "instance", "none")


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
        from ...losses import LOSSES

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
    from ...nets.translators import UnetGenerator

    cfg = cfg.resolved()
    return UnetGenerator(cfg.channels + 1, cfg.channels, num_downs=cfg.unet_downs, ngf=cfg.ngf, norm=cfg.norm,
                         use_dropout=False)

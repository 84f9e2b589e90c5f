"""Options of an image-to-image training run (pix2pix, CycleGAN, SPADE): one dataclass, saved as
config.json and compared on resume. ``auto`` fields take the paper's setting for the chosen model
(see :meth:`TranslateConfig.resolved`), so the defaults reproduce the published recipes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import GanforgeError
from ..train.options import LoopOptions

MODELS = ("pix2pix", "cyclegan", "spade")
DIRECTIONS = ("AtoB", "BtoA")
NORMS = ("batch", "instance", "none")

# per-model defaults (pix2pix: Isola et al. 2017; CycleGAN: Zhu et al. 2017; SPADE: Park et al. 2019)
MODEL_DEFAULTS = {
    "pix2pix": dict(generator="unet", norm="batch", gan_loss="non-saturating", lr_g=2e-4, lr_d=2e-4,
                    beta1=0.5, beta2=0.999, lr_schedule="constant-then-linear"),
    "cyclegan": dict(generator="resnet", norm="instance", gan_loss="lsgan", lr_g=2e-4, lr_d=2e-4,
                     beta1=0.5, beta2=0.999, lr_schedule="constant-then-linear"),
    "spade": dict(generator="spade", norm="instance", gan_loss="hinge", lr_g=1e-4, lr_d=4e-4,
                  beta1=0.0, beta2=0.9, lr_schedule="constant-then-linear"),
}


def parse_size(text: str | int) -> tuple[int, int]:
    """'256' -> (256, 256); '256x128' -> (height 256, width 128)."""
    try:
        if isinstance(text, int):
            return text, text
        parts = [int(p) for p in str(text).lower().replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise GanforgeError(f"--crop-size must be N or HxW (e.g. 256 or 256x128), got {text!r}")
    return parts[0], parts[1]


@dataclass
class TranslateConfig(LoopOptions):
    # data
    data: str = ""  # folder: A/ + B/ (paired by name, or unpaired), side-by-side AB images, or labels/ + images/
    model: str = "pix2pix"
    direction: str = "AtoB"  # pix2pix/cyclegan: which side is the input
    load_size: int = 286  # images are resized (short side) and centre-cropped to this square first
    crop_size: str = "256"  # random training crop: N or HxW (non-square allowed)
    channels_a: int = 3
    channels_b: int = 3
    num_classes: int = 0  # spade: number of label classes (ids 0..N-1); required
    hflip: bool = True
    max_images: int | None = None
    # model
    generator: str = "auto"  # unet | resnet | spade (auto: the model's own)
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3  # PatchGAN depth: 3 = 70×70 receptive field
    num_d: int = 2  # spade: discriminator scales
    norm: str = "auto"  # batch | instance | none (auto: the model's own)
    dropout: bool = True  # pix2pix U-Net: dropout as the noise source
    unet_downs: int = 0  # 0: as many as the crop allows, up to 8 (U-Net-256)
    resnet_blocks: int = 0  # 0: 9 for crops >= 256, else 6 (the CycleGAN recipes)
    # losses
    gan_loss: str = "auto"  # non-saturating (pix2pix 'vanilla') | lsgan | hinge
    lambda_l1: float = 100.0  # pix2pix
    lambda_cycle: float = 10.0  # cyclegan
    lambda_identity: float = 0.5  # cyclegan, relative to lambda_cycle (0: off)
    lambda_feat: float = 10.0  # spade: discriminator feature matching
    pool_size: int = 50  # cyclegan: history of fakes shown to D (0: off)
    # optimisation
    lr_g: float = 0.0  # 0: the model's own (2e-4; spade 1e-4)
    lr_d: float = 0.0  # 0: the model's own (2e-4; spade 4e-4)
    beta1: float = -1.0  # <0: the model's own (0.5; spade 0)
    beta2: float = -1.0  # <0: the model's own (0.999; spade 0.9)
    ema: float = 0.0  # EMA decay of the generator(s); 0: off (the papers use none)
    channels_last: bool = True  # NHWC activations on CUDA (ignored on the CPU, where NCHW is faster for these nets)
    # loop (the rest: train/options.py)
    steps: int = 1000
    batch_size: int = 1
    lr_schedule: str = "auto"  # auto: constant for the first half, then linear to 0 (the papers' recipe)

    RESUMABLE_CHANGES = LoopOptions.RESUMABLE_CHANGES + ("channels_last",)

    def resolved(self) -> "TranslateConfig":
        """A copy with every ``auto``/0 field replaced by the model's own setting."""
        if self.model not in MODELS:
            raise GanforgeError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        d = MODEL_DEFAULTS[self.model]
        ch, cw = parse_size(self.crop_size)
        out = replace(self)
        out.generator = d["generator"] if self.generator == "auto" else self.generator
        out.norm = d["norm"] if self.norm == "auto" else self.norm
        out.gan_loss = d["gan_loss"] if self.gan_loss == "auto" else self.gan_loss
        out.lr_g = self.lr_g or d["lr_g"]
        out.lr_d = self.lr_d or d["lr_d"]
        out.beta1 = d["beta1"] if self.beta1 < 0 else self.beta1
        out.beta2 = d["beta2"] if self.beta2 < 0 else self.beta2
        out.lr_schedule = d["lr_schedule"] if self.lr_schedule == "auto" else self.lr_schedule
        if out.generator == "unet" and not self.unet_downs:
            out.unet_downs = max(5, min(8, int(math.log2(min(ch, cw)))))  # upstream U-Nets have >= 5 levels
        if out.generator == "resnet" and not self.resnet_blocks:
            out.resnet_blocks = 9 if min(ch, cw) >= 256 else 6
        return out

    def validate(self) -> None:
        from ..losses import LOSSES

        r = self.resolved()
        ch, cw = parse_size(self.crop_size)
        if self.direction not in DIRECTIONS:
            raise GanforgeError(f"--direction must be AtoB or BtoA, got {self.direction!r}")
        if r.generator not in ("unet", "resnet", "spade"):
            raise GanforgeError(f"--generator must be unet, resnet or spade, got {self.generator!r}")
        if (r.generator == "spade") != (self.model == "spade"):
            raise GanforgeError("--generator spade goes with --model spade (and only there)")
        if r.generator == "unet" and not 5 <= r.unet_downs <= 9:
            raise GanforgeError(f"--unet-downs must be 5..9 (the U-Net's fixed outer levels need 5), got {r.unet_downs}")
        if r.norm not in NORMS:
            raise GanforgeError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if r.gan_loss not in ("non-saturating", "lsgan", "hinge"):
            raise GanforgeError(f"--gan-loss must be non-saturating, lsgan or hinge, got {self.gan_loss!r}")
        LOSSES.get(r.gan_loss)
        for name in ("channels_a", "channels_b"):
            if getattr(self, name) not in (1, 3):
                raise GanforgeError(f"--{name.replace('_', '-')} must be 1 or 3, got {getattr(self, name)}")
        if self.model == "spade" and self.num_classes < 2:
            raise GanforgeError("--model spade needs --num-classes (2 or more label classes)")
        if max(ch, cw) > self.load_size:
            raise GanforgeError(f"--crop-size {self.crop_size} is larger than --load-size {self.load_size}")
        multiple = self.multiple()
        if ch % multiple or cw % multiple:
            raise GanforgeError(f"--crop-size {self.crop_size} must be a multiple of {multiple} for this generator "
                                f"(lower --unet-downs, or choose another crop)")
        if not 0 <= self.ema < 1:
            raise GanforgeError(f"--ema must be in [0, 1), got {self.ema}")
        if self.pool_size < 0 or self.lambda_identity < 0:
            raise GanforgeError("--pool-size and --lambda-identity must be >= 0")
        self.loop_config().validate()

    def multiple(self) -> int:
        """What H and W must be divisible by during training (inference pads to it)."""
        r = self.resolved()
        if r.generator == "unet":
            return 2 ** r.unet_downs
        if r.generator == "resnet":
            return 4
        return 32  # spade, 'normal' upsampling: 5 upsamplings

    def crop_hw(self) -> tuple[int, int]:
        return parse_size(self.crop_size)

    def loop_config(self):
        """The loop's options, with ``lr_schedule='auto'`` resolved to the model's own."""
        from ..train.loop import LoopConfig

        return LoopConfig(**{**self.resolved_loop().loop_options(), "eval_every": 0})

    def resolved_loop(self) -> "TranslateConfig":
        out = replace(self)
        if out.lr_schedule == "auto" and self.model in MODELS:
            out.lr_schedule = MODEL_DEFAULTS[self.model]["lr_schedule"]
        return out

"""``ganforge train-upscaler``: train an ESRGAN-style super-resolution network (L1 phase, then
L1 + perceptual + GAN) on an image folder. Flags map one-to-one onto
:class:`ganforge.restore.sr.SRConfig`."""

from __future__ import annotations

import argparse


HELP_LINE = "train an ESRGAN / SRResNet upscaler (L1 phase, then GAN phase; resumable)"

HELP = {
    "data": "image folder (cut into --tile-size tiles at native resolution) or a built-in dataset "
            "(fashion-mnist, mnist, digits)",
    "tile_size": "folders: non-overlapping tiles of N px cut from every image; datasets: their resolution",
    "max_images": "use the first N images only",
    "scale": "2 or 4",
    "crop": "HR training crop in px (a multiple of --scale; the LR crop is crop / scale)",
    "degradation": "how LR inputs are made: bicubic, blur, noise, jpeg, classic (blur+down+noise+jpeg) or "
                   "realistic (two rounds, Real-ESRGAN-style)",
    "hflip": "random horizontal flips",
    "arch": "rrdb (ESRGAN RRDBNet) or srresnet (basicsr MSRResNet)",
    "nf": "generator features",
    "nb": "generator blocks (0: RRDBNet 23, SRResNet 16)",
    "gc": "RRDBNet growth channels",
    "ndf": "discriminator width",
    "d_layers": "PatchGAN discriminator depth",
    "d_norm": "discriminator norm: batch, instance or none",
    "psnr_steps": "L1-only pre-training steps; the GAN phase runs from there to --steps (>= --steps: L1 only)",
    "l1_weight": "GAN phase: weight of the L1 term",
    "perceptual_weight": "GAN phase: weight of the VGG19 feature L1 (0: off, no VGG weights needed)",
    "perceptual_encoder": "VGG19 for the perceptual loss: a registered name (ganforge weights list) or a file",
    "perceptual_layers": "comma list of VGG layer:weight",
    "gan_weight": "GAN phase: weight of the adversarial term (0: off)",
    "gan_loss": "ragan (relativistic average, ESRGAN) or non-saturating",
    "lr_psnr": "generator LR in the L1 phase",
    "lr_g": "generator LR in the GAN phase",
    "lr_d": "discriminator LR",
    "beta1": "Adam beta1",
    "beta2": "Adam beta2",
    "ema": "EMA decay of the generator weights (0: off); the EMA copy is what upscale loads",
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..restore.sr import SRConfig
    from .train import add_training_arguments

    parser = sub.add_parser("train-upscaler", help=HELP_LINE,
                            description="Train a super-resolution network on an image folder: (LR, HR) pairs "
                                        "are made on the fly by downscaling/degrading random crops. Steps "
                                        "[0, --psnr-steps) train with L1 only; the rest add a VGG perceptual "
                                        "loss and a discriminator (ESRGAN). Run it again with the same --out to "
                                        "resume exactly; `ganforge upscale --model RUN` uses the result.")
    add_training_arguments(parser, SRConfig, HELP, float_optionals=())
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..restore.sr import SRConfig, train_upscaler
    from .train import run_training

    return run_training(args, SRConfig, train_upscaler)

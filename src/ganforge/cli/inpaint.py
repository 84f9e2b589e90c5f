"""``ganforge train-inpainter`` and ``ganforge inpaint``: train an inpainting GAN on any image folder,
and fill holes in images with it (thin wrappers over :mod:`ganforge.restore.inpaint`).

``train-inpainter`` flags map one-to-one onto :class:`ganforge.restore.inpaint.InpaintConfig`.
``inpaint`` writes PNG of the input's exact size; the known pixels are kept byte for byte.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._common import add_json, add_network_options, add_quiet, write_json
from ._files import image_inputs, png_outputs

HELP = {
    "data": "a folder of images (searched recursively, any layout) or a built-in dataset (fashion-mnist, mnist, ...)",
    "load_size": "resize (short side) and centre-crop every image to this square first",
    "crop_size": "random square training crop (a multiple of 2**unet-downs)",
    "channels": "1 (grey) or 3 (RGB)",
    "hflip": "random horizontal flips",
    "mask_kind": "hole masks made during training: rect, brush (free-form strokes) or mix",
    "min_hole": "smallest hole, as a fraction of the crop",
    "max_hole": "largest hole, as a fraction of the crop",
    "generator": "unet (pix2pix's U-Net on image + mask)",
    "prefill": "pyramid: the generator corrects a smooth multigrid (membrane) fill of the hole (residual); none: hole set to grey",
    "norm": "batch, instance or none",
    "unet_downs": "U-Net depth (0: as deep as the crop allows, 5..8)",
    "gan_loss": "non-saturating, lsgan or hinge",
    "lambda_hole": "weight of the L1 loss inside the hole",
    "lambda_valid": "weight of the L1 loss on the known pixels",
    "lambda_gan": "weight of the adversarial loss (PatchGAN on the composite + mask)",
    "perceptual_weight": "weight of a VGG feature loss on the composite (0: off; needs VGG weights)",
    "perceptual_encoder": "registered VGG for the perceptual loss (ganforge weights list)",
    "ema": "EMA decay of the generator weights (0: off)",
    "lr_schedule": "constant, linear, cosine or constant-then-linear",
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..restore.inpaint import InpaintConfig
    from .train import add_training_arguments

    train = sub.add_parser("train-inpainter", help="train an inpainting GAN on an image folder",
                           description="Train an inpainting GAN (U-Net on image + mask, PatchGAN, L1 + adversarial "
                                       "losses) with hole masks made on the fly. Run it again with the same --out "
                                       "to resume exactly.")
    add_training_arguments(train, InpaintConfig, HELP, float_optionals=())
    train.set_defaults(func=_train)

    p = sub.add_parser("inpaint", help="fill holes in images with a trained inpainter",
                       description="Fill the white area of --mask in each image (any size; the mask is resized "
                                   "to the image, nearest). Output size == input size; the known pixels are "
                                   "kept exactly. Writes PNG.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files and/or folders of images")
    p.add_argument("--mask", required=True, metavar="MASK",
                   help="mask image: white (> 127) = hole, black = keep; any size")
    p.add_argument("--model", required=True, metavar="RUN",
                   help="a ganforge train-inpainter run directory, or an inpainter file written by ganforge export")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="output .png for a single image, else a folder (one INPUT_STEM.png per image)")
    p.add_argument("--checkpoint", default="latest", help="latest, best or step-N")
    add_network_options(p)
    add_quiet(p)
    add_json(p, "the model and one record per image")
    p.set_defaults(func=_inpaint)


def _train(args: argparse.Namespace) -> int:
    from ..restore.inpaint import InpaintConfig, train_inpainter
    from .train import run_training

    return run_training(args, InpaintConfig, train_inpainter)


def _inpaint(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..imageio import open_image, save_image
    from ..restore.inpaint import inpaint_image, load_inpainter

    files = image_inputs(args.inputs)
    outputs = png_outputs(files, args.out, "inpaint writes PNG (the known pixels stay exact)")
    mask = open_image(args.mask, "L")  # read once (a file that is not an image: one line, before any work)
    model = load_inpainter(args.model, checkpoint=args.checkpoint, device=args.device, precision=args.precision)
    from ..provenance import model_provenance

    prov = model_provenance("inpaint", args.model, {"mask": os.path.basename(str(args.mask))})
    records = []
    to_stderr = args.json_path == "-"
    for src, dst in tqdm(list(zip(files, outputs)), desc="inpaint", unit="img", disable=args.quiet, file=sys.stderr):
        start = time.perf_counter()
        image = inpaint_image(model, src, mask)
        save_image(image, dst, provenance=prov)
        records.append({"input": str(src), "output": str(dst), "size": list(image.size),
                        "seconds": round(time.perf_counter() - start, 3)})
    where = outputs[0] if len(outputs) == 1 else f"{len(outputs)} images to {args.out}"
    print(f"wrote {where}", file=sys.stderr if to_stderr else sys.stdout)
    write_json({"model": model.name, "mask": args.mask, "device": str(model.device), "precision": model.precision,
                "images": records}, args.json_path)
    return 0

"""``ganforge translate train|apply``: pix2pix, CycleGAN and SPADE.

``train`` flags map one-to-one onto :class:`ganforge.translate.config.TranslateConfig` (as
``ganforge train`` onto GanConfig); ``apply`` runs a run directory, a zoo name or a ``.pth`` on
files and folders, writing PNGs of the input's exact size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_json, add_network_options, add_quiet, add_watermark, write_json
from .video import add_video_options, run_video_op, single_video_input

HELP = {
    "data": "folder: A/ + B/ (paired by file name for pix2pix, unpaired for cyclegan), side-by-side AB "
            "images (pix2pix), or labels/ + images/ (spade)",
    "model": "pix2pix, cyclegan or spade",
    "direction": "AtoB or BtoA: which side is the input",
    "load_size": "resize (short side) and centre-crop every image to this square first",
    "crop_size": "random training crop, N or HxW (non-square allowed)",
    "channels_a": "1 (grey) or 3 (RGB) for side A",
    "channels_b": "1 (grey) or 3 (RGB) for side B",
    "num_classes": "spade: label classes (ids 0..N-1 in indexed or greyscale PNGs)",
    "hflip": "random horizontal flips (the same for both images of a pair)",
    "generator": "auto (the model's own), unet, resnet or spade",
    "norm": "auto (pix2pix batch, cyclegan/spade instance), batch, instance or none",
    "dropout": "pix2pix U-Net dropout (the model's noise)",
    "unet_downs": "U-Net depth (0: as deep as the crop allows, up to 8)",
    "resnet_blocks": "ResNet generator blocks (0: 9 for crops >= 256, else 6)",
    "gan_loss": "auto (pix2pix non-saturating, cyclegan lsgan, spade hinge), non-saturating, lsgan or hinge",
    "lambda_l1": "pix2pix: weight of the L1 term",
    "lambda_cycle": "cyclegan: weight of the cycle-consistency terms",
    "lambda_identity": "cyclegan: identity weight relative to --lambda-cycle (0: off)",
    "lambda_feat": "spade: discriminator feature-matching weight",
    "pool_size": "cyclegan: fakes kept to train D on (0: off)",
    "lr_g": "generator LR (0: the model's own)",
    "lr_d": "discriminator LR (0: the model's own)",
    "beta1": "Adam beta1 (negative: the model's own)",
    "beta2": "Adam beta2 (negative: the model's own)",
    "ema": "EMA decay of the generator weights (0: off)",
    "lr_schedule": "auto (constant for the first half, then linear to 0), constant, linear, cosine or constant-then-linear",
    "num_d": "spade: discriminator scales",
    "n_layers_d": "PatchGAN layers (3: 70x70 patches)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..translate.config import TranslateConfig
    from .train import add_training_arguments

    parser = sub.add_parser("translate", help="image-to-image translation: pix2pix, CycleGAN, SPADE",
                            description="Train an image-to-image model, or apply one (a run, a zoo name, a .pth).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    train = actions.add_parser("train", help="train pix2pix, CycleGAN or SPADE on a folder",
                               description="Train an image-to-image model. Run it again with the same --out to "
                                           "resume exactly.")
    add_training_arguments(train, TranslateConfig, HELP, float_optionals=())
    train.set_defaults(func=_train)

    apply = actions.add_parser("apply", help="translate images with a run, a zoo model or a .pth",
                               description="Translate images of any size (output size == input size).")
    apply.add_argument("model", metavar="RUN_OR_ZOO",
                       help="a translate run directory, a zoo name (ganforge weights list) or a .pth generator")
    apply.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="image files or folders (label maps for spade), or one video (its frames through the "
                            "shared video path)")
    apply.add_argument("--out", required=True,
                       help="output folder (PNG files named after the inputs); for a video: a video file or a folder")
    apply.add_argument("--direction", default=None, choices=("AtoB", "BtoA"),
                       help="cyclegan runs: which generator (default AtoB)")
    apply.add_argument("--checkpoint", default="latest", help="latest, best or step-N")
    apply.add_argument("--tile", type=int, default=None, metavar="N",
                       help="process in N px tiles with blended overlaps (default: only above ~2.4 Mpx, 512)")
    apply.add_argument("--overlap", type=int, default=32, metavar="N", help="tile overlap in px")
    add_video_options(apply, 0.0, "frames translated independently")
    add_network_options(apply)
    add_watermark(apply)
    add_quiet(apply)
    add_json(apply, "what was written (for a video: the video summary)")
    apply.set_defaults(func=_apply)


def _train(args: argparse.Namespace) -> int:
    from ..translate.config import TranslateConfig
    from ..translate.train import train_translator
    from .train import run_training

    return run_training(args, TranslateConfig, train_translator)


def _apply(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.folder import list_images
    from ..errors import GanforgeError
    from ..translate.apply import load_translator

    video = single_video_input(args.inputs, args.out)
    if video is not None:
        from ..video.ops import translator_op

        translator = load_translator(args.model, direction=args.direction, checkpoint=args.checkpoint,
                                     device=args.device, precision=args.precision)
        op = translator_op(translator, tile=args.tile, overlap=args.overlap)
        settings = {"model": str(args.model), "direction": args.direction, "checkpoint": args.checkpoint,
                    "tile": args.tile, "overlap": args.overlap, "precision": translator.precision,
                    "device": str(translator.device)}
        run_video_op(args, video, op, settings, "translate (video)")
        return 0
    files: list[tuple[Path, Path]] = []  # (input, output name relative to --out)
    for item in args.inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)[0]
            files += [(p, p.relative_to(path).with_suffix(".png")) for p in found]
        elif path.is_file():
            files.append((path, Path(path.stem + ".png")))
        else:
            raise GanforgeError(f"no such file or folder: {path}")
    if not files:
        raise GanforgeError(f"no images in {', '.join(args.inputs)}")
    translator = load_translator(args.model, direction=args.direction, checkpoint=args.checkpoint,
                                 device=args.device, precision=args.precision)
    from ..imageio import save_image
    from ..provenance import model_provenance

    out_dir = Path(args.out)
    prov = model_provenance("translate", args.model, {"direction": args.direction}, watermark=args.watermark)
    written, failed = [], []
    for src, rel in tqdm(files, desc="translate", unit="img", disable=args.quiet, file=sys.stderr):
        try:
            image = translator(src, tile=args.tile, overlap=args.overlap)
        except GanforgeError as exc:  # one bad file does not lose the others
            failed.append({"input": str(src), "error": str(exc)})
            print(f"ganforge: skipped {src}: {exc}", file=sys.stderr)
            continue
        target = out_dir / rel
        save_image(image, target, provenance=prov)  # temp file + rename: a file that exists is complete
        written.append({"input": str(src), "output": str(target), "size": list(image.size)})
    result = {"model": translator.name, "device": str(translator.device), "precision": translator.precision,
              "written": written, "failed": failed}
    if args.json_path != "-":
        print(f"wrote {len(written)} image(s) to {out_dir}" + (f"; {len(failed)} failed" if failed else ""))
    write_json(result, args.json_path)
    return 1 if failed and not written else 0

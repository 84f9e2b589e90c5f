"""``ganforge stylize`` and ``ganforge train-style``: thin wrappers over :mod:`ganforge.style`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import (add_json, add_network_options, add_quiet, add_style_controls, add_watermark, hide_alias,
                      write_json)

# train-style: flags map one-to-one onto ganforge.style.train.DecoderTrainConfig (as train onto GanConfig)
TRAIN_HELP = {
    "content": "folder of content photos (required)",
    "style": "folder of style images (required)",
    "encoder": "registered encoder name or path (vgg19-caffe: the offline file in GANFORGE_WEIGHTS_DIR)",
    "layer": "decoder input layer: relu1_1, relu2_1, relu3_1 or relu4_1 (shallower ones are for multi-level WCT)",
    "crop": "random training crop size",
    "load_size": "resize images so the short side is this before cropping",
    "lr": "Adam learning rate",
    "style_weight": "weight of the style (mean/std) loss",
    "content_weight": "weight of the content loss",
    "lr_schedule": "constant, linear, cosine or constant-then-linear",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="restyle images (AdaIN, WCT or Gatys)",
                       description="Stylise CONTENT (file or folder) with one or more --style images. "
                                   "Folder x folder runs a batch with a progress bar.")
    p.add_argument("content", help="content image or folder")
    add_style_controls(p, style_help="style image[:weight] (repeat for several), or a folder (batch)",
                       colour_help="colour preservation: match (recolour style to content), luminance (YIQ) / "
                                   "luminance-ycbcr")
    p.add_argument("--mask", help="mask image (first style inside, second outside) or 'auto' (foreground split)")
    p.add_argument("--max-size", type=int, help="cap the long side for processing (output keeps input size)")
    p.add_argument("--no-preserve-size", dest="preserve_size", action="store_false",
                   help="with --max-size: return the processed size instead of the input size")
    p.add_argument("--tile", type=int, help="tiled inference with tiles of this size (adain/wct)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap blended linearly (px)")
    p.add_argument("--encoder", help="encoder weights name or path (default: vgg19-torchvision for gatys, "
                                     "the decoder's encoder for adain/wct)")
    p.add_argument("--decoder", help="decoder weights name or path (adain/wct)")
    add_network_options(p)
    add_watermark(p)
    p.add_argument("--style-size", type=int, default=512, help="long side the style images are used at")
    p.add_argument("--iterations", type=int, help="gatys: optimiser iterations per scale (default 200)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], help="gatys optimiser")
    p.add_argument("--style-weight", type=float, help="gatys style weight (default: per encoder, 30 for Caffe VGG19s, 1e6 for vgg19-torchvision)")
    p.add_argument("--content-weight", type=float, help="gatys content weight (default 1)")
    p.add_argument("--tv-weight", type=float, help="gatys total-variation weight (default 0)")
    p.add_argument("--scales", help="gatys coarse-to-fine scales, e.g. 0.5,1")
    add_json(p, "the similarity metrics (content/style similarity, losses)")
    hide_alias(p, "--metrics", dest="json_path")  # old spelling of --json PATH
    add_quiet(p)
    p.set_defaults(func=run_stylize)

    from ..style.train import DecoderTrainConfig
    from .train import add_training_arguments

    t = sub.add_parser("train-style", help="train an AdaIN decoder for an encoder",
                       description="Train an AdaIN decoder (content + style loss). Re-run with the same "
                                   "--out to resume exactly. Writes OUT/decoder.safetensors.")
    add_training_arguments(t, DecoderTrainConfig, TRAIN_HELP, float_optionals=())
    t.set_defaults(func=run_train_style, precision="auto")  # --precision shows its default, as elsewhere


def _gatys_options(args: argparse.Namespace) -> dict:
    opts = {k: getattr(args, k) for k in ("iterations", "optimizer", "style_weight", "content_weight", "tv_weight")
            if getattr(args, k) is not None}
    if args.scales:
        opts["scales"] = tuple(float(s) for s in args.scales.split(","))
    return opts


def run_stylize(args: argparse.Namespace) -> int:
    from ..style import Stylizer
    from ..style.controls import StyleError, parse_style_spec

    gatys_opts = _gatys_options(args)
    if gatys_opts and args.method != "gatys":
        raise StyleError("--iterations/--optimizer/--style-weight/--content-weight/--tv-weight/--scales are gatys options")
    st = Stylizer(args.method, encoder=args.encoder, decoder=args.decoder, precision=args.precision,
                  device=args.device, style_size=args.style_size)
    options = dict(alpha=args.alpha, colour=args.colour, max_size=args.max_size, preserve_size=args.preserve_size,
                   tile=args.tile, overlap=args.overlap, **gatys_opts)
    if args.mask:
        options["mask"] = args.mask if args.mask == "auto" else Path(args.mask)
    content = Path(args.content)
    batch = content.is_dir() or (len(args.style) == 1 and Path(parse_style_spec(args.style[0])[0]).is_dir())
    if batch:
        if args.mask:
            raise StyleError("--mask works with one content image, not a folder")
        styles = parse_style_spec(args.style[0])[0] if len(args.style) == 1 else [parse_style_spec(s)[0] for s in args.style]
        written = st.batch(content, styles, args.out, progress=not args.quiet, metrics=bool(args.json_path),
                           watermark=args.watermark,
                           **options)
        if args.json_path:
            write_json(json.loads((Path(args.out) / "metrics.json").read_text()), args.json_path)
        print(f"wrote {len(written)} images to {args.out}", file=sys.stderr if args.json_path == "-" else sys.stdout)
        return 0
    styles = [parse_style_spec(s) for s in args.style]
    out = st.stylize_tensor(content, styles, **options)
    from ..imageio import save_image

    path = save_image(out[0], args.out, provenance=st.provenance(args.content, styles[0][0] if len(styles) == 1 else None,
                                                              watermark=args.watermark))
    if args.json_path:
        report = st.report(out, content, styles[0][0])
        if getattr(st, "last_history", None):
            report["gatys_style_loss_start"] = st.last_history[0]["style"]
            report["gatys_style_loss_end"] = st.last_history[-1]["style"]
        if args.json_path != "-":
            print(json.dumps({k: round(v, 3) for k, v in report.items()}))
        write_json({**report, "report_encoder": st.report_encoder_name}, args.json_path)
    print(path, file=sys.stderr if args.json_path == "-" else sys.stdout)
    return 0


def run_train_style(args: argparse.Namespace) -> int:
    from ..style.train import DecoderTrainConfig, train_decoder
    from .train import run_training

    return run_training(args, DecoderTrainConfig, train_decoder,
                        keys=("run_dir", "decoder", "steps", "seconds", "resumed_from"))

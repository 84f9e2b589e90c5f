"""``ganforge upscale``: super-resolve images with a registered or local RRDBNet / SRResNet
(thin wrapper over :mod:`ganforge.restore`)."""

from __future__ import annotations

import argparse
import sys
import time

from ._common import add_json, add_network_options, add_quiet, add_watermark, write_json
from ._files import image_inputs, png_outputs
from .video import add_video_options, run_video_op, single_video_input

HELP = "super-resolve images ×2/×4 with ESRGAN / Real-ESRGAN networks (tiled)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help=HELP,
                       description="Super-resolve images (files or folders of images) with a pretrained "
                                   "RRDBNet/SRResNet: a registered name (see `ganforge weights list`, e.g. "
                                   "realesrgan-x4plus; Real-ESRGAN's own names work too) or a .pth/.safetensors "
                                   "file in the ESRGAN/Real-ESRGAN layout. Writes PNG.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files and/or folders of images, or one video (frames through the shared video path)")
    p.add_argument("--model", required=True, metavar="NAME_OR_PTH",
                   help="registered weights name (realesrgan-x4plus, realesrgan-x2plus, realesrnet-x4plus, "
                        "realesrgan-x4plus-anime, esrgan-x4), a weights file, or a `ganforge train-upscaler` run "
                        "directory")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="output .png for a single image, else a folder (one INPUT_STEM.png per image); "
                        "for a video: a video file (.mp4 …) or a folder (PNG sequence)")
    p.add_argument("--scale", type=float, default=None,
                   help="output scale (default: the network's); another value resizes the network's output "
                        "(bicubic) to scale × the input size")
    p.add_argument("--tile", type=int, default=None,
                   help="process tiles of N input px (for large images / little memory; default: whole image)")
    p.add_argument("--overlap", type=int, default=16, help="px by which tiles overlap and are cross-faded (default 16)")
    p.add_argument("--halo", type=int, default=16,
                   help="extra context px computed around each tile and discarded (default 16)")
    add_video_options(p, 0.0, "frames upscaled independently")
    add_network_options(p)
    add_watermark(p)
    add_quiet(p)
    add_json(p, "the model, settings and one record per image (for a video: the video summary)")
    p.set_defaults(func=run_upscale)


def run_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..device import resolve_device, resolve_precision
    from ..errors import GanforgeError
    from ..imageio import load_image, save_image
    from ..restore.upscale import upscale_image
    from ..restore.zoo import build_upscaler

    if args.tile is not None and args.tile < 1:
        raise GanforgeError(f"--tile must be a positive number of pixels, got {args.tile}")
    if args.scale is not None and args.scale <= 0:
        raise GanforgeError(f"--scale must be positive, got {args.scale}")
    video = single_video_input(args.inputs, args.out)
    if video is None:
        files = image_inputs(args.inputs)
        outputs = png_outputs(files, args.out, "upscale writes PNG")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    net = build_upscaler(args.model).to(device)
    if video is not None:
        from ..video.ops import upscaler_op

        op = upscaler_op(net, tile=args.tile, overlap=args.overlap, halo=args.halo, precision=precision,
                         device=device, out_scale=args.scale)
        settings = {"model": args.model, "scale": args.scale or net.scale, "tile": args.tile, "overlap": args.overlap,
                    "halo": args.halo, "precision": precision, "device": str(device)}
        run_video_op(args, video, op, settings, "upscale (video)", out_scale=args.scale or net.scale)
        return 0
    from ..provenance import model_provenance

    prov = model_provenance("upscale", args.model, {"scale": args.scale or net.scale, "tile": args.tile},
                            watermark=args.watermark)
    records = []
    to_stderr = args.json_path == "-"
    for src, dst in tqdm(list(zip(files, outputs)), desc="upscale", unit="img", disable=args.quiet, file=sys.stderr):
        start = time.perf_counter()
        image = load_image(src)
        out = upscale_image(net, image, tile=args.tile, overlap=args.overlap, halo=args.halo,
                            precision=precision, device=device, out_scale=args.scale)
        save_image(out, dst, provenance=prov)
        records.append({"input": str(src), "output": str(dst), "input_size": [image.shape[-1], image.shape[-2]],
                        "output_size": [out.shape[-1], out.shape[-2]],
                        "seconds": round(time.perf_counter() - start, 3)})
    if len(outputs) == 1:
        print(outputs[0], file=sys.stderr if to_stderr else sys.stdout)
    else:
        print(f"wrote {len(outputs)} images to {args.out}", file=sys.stderr if to_stderr else sys.stdout)
    write_json({"model": args.model, "architecture": type(net).__name__, "network_scale": net.scale,
                "scale": args.scale or net.scale, "device": str(device), "precision": precision, "tile": args.tile,
                "overlap": args.overlap, "halo": args.halo, "images": records}, args.json_path)
    return 0

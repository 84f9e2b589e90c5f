"""``ganforge export``: a run's generator as one self-describing .safetensors file
(:mod:`ganforge.export`, docs/export.md)."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json, add_quiet, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's model as one self-describing .safetensors file or an ONNX graph",
                       description="Write the model of a run of any task (GAN, translator, style decoder, upscaler, "
                                   "inpainter): its state_dict under the architecture's module names, with what "
                                   "rebuilds it in the file's metadata (layout: docs/export.md), or an ONNX graph "
                                   "with a dynamic batch axis. ganforge sample, interpolate, video and "
                                   "ganforge.load_generator accept a GAN run's file in place of the run directory; "
                                   "ganforge.export.from_pretrained loads any.")
    p.add_argument("run", metavar="RUN", help="run directory (any task)")
    p.add_argument("--out", required=True, help="output file (.safetensors or .onnx)")
    p.add_argument("--format", choices=("safetensors", "onnx"), default=None,
                   help="file format (default: from the --out suffix)")
    p.add_argument("--encoder", default=None,
                   help="ONNX of a style decoder: the VGG encoder (default: the one it was trained for)")
    p.add_argument("--size", default=None, type=_size, metavar="HxW",
                   help="ONNX of an inpainter trained with --prefill pyramid: the one image size of the graph")
    p.add_argument("--checkpoint", default="latest", help="latest, best or step-NNNNNNN")
    p.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw generator instead of its EMA")
    add_json(p, "the export summary (file, size, metadata)")
    add_quiet(p)
    p.set_defaults(func=run_export)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        return int(h), int(w or h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None


def run_export(args: argparse.Namespace) -> int:
    from ..export import export_run

    summary = export_run(args.run, args.out, checkpoint_name=args.checkpoint, ema=args.ema, format=args.format,
                         encoder=args.encoder, size=args.size)
    out = sys.stderr if args.json_path == "-" else sys.stdout
    meta = summary.get("metadata", {})
    if summary["format"] == "onnx":
        print(f"{summary['output']} (ONNX opset {summary['opset']}, {summary['family']}: "
              f"{', '.join(summary['inputs'])} -> {', '.join(summary['outputs'])}, {summary['bytes']} bytes)", file=out)
    elif "weights" in meta:  # a GAN run's generator layout
        print(f"{summary['output']} ({meta['arch']}, {meta['weights']} weights of step {meta['step']}, "
              f"{summary['tensors']} tensors, {summary['bytes']} bytes)", file=out)
    else:
        print(f"{summary['output']} ({meta['family']} {meta['arch']}, {summary['tensors']} tensors, "
              f"{summary['bytes']} bytes)", file=out)
    write_json(summary, args.json_path)
    return 0

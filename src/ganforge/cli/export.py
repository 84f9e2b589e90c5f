"""``ganforge export``: a run's generator as one self-describing .safetensors file
(:mod:`ganforge.export`, docs/export.md)."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's generator as one self-describing .safetensors file",
                       description="Write the EMA generator of a GAN run (its state_dict under the architecture's "
                                   "module names, with arch, spec, class names, version and step in the file's "
                                   "metadata; layout: docs/export.md). ganforge sample, interpolate, video and "
                                   "ganforge.load_generator accept the file in place of the run directory.")
    p.add_argument("run", metavar="RUN", help="GAN run directory")
    p.add_argument("--out", required=True, help="output file (.safetensors)")
    p.add_argument("--checkpoint", default="latest", help="latest, best or step-NNNNNNN")
    p.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw generator instead of its EMA")
    add_json(p, "the export summary (file, size, metadata)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..export import export_run

    summary = export_run(args.run, args.out, checkpoint_name=args.checkpoint, ema=args.ema)
    meta = summary["metadata"]
    print(f"{summary['output']} ({meta['arch']}, {meta['weights']} weights of step {meta['step']}, "
          f"{summary['tensors']} tensors, {summary['bytes']} bytes)", file=sys.stderr if args.json_path == "-" else sys.stdout)
    write_json(summary, args.json_path)
    return 0

"""``ganforge provenance IMAGE...``: what image files say about their making (the XMP
"AI-generated" packet ganforge writes: IPTC digital source type, software, method, model, model
hash, parameters)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ._common import add_json, add_quiet, write_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("provenance", help="report the provenance metadata (AI-generated mark) of images")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    add_json(parser, "one object per image: path, metadata, watermark (detected, bit_accuracy, p_value)")
    add_quiet(parser)
    parser.set_defaults(func=_provenance)


def _provenance(args: argparse.Namespace) -> int:
    from ..errors import GanforgeError
    from ..provenance import read_provenance
    from ..imageio import open_image
    from ..watermark import detect
    from ._files import image_inputs

    human = sys.stderr if args.json_path == "-" else sys.stdout
    rows, failed = [], 0
    for path in image_inputs(args.images):
        try:
            meta = read_provenance(path)
        except GanforgeError as exc:  # one unreadable file does not hide the others
            print(f"ganforge: {exc}", file=sys.stderr)
            failed += 1
            continue
        mark = detect(np.asarray(open_image(path, "RGB"))).as_dict()
        rows.append({"path": str(path), "metadata": meta, "watermark": mark})
        seen = (f"watermark found (bits {mark['bit_accuracy']:.2f}, p = {mark['p_value']:.1e})" if mark["detected"]
                else "no watermark")
        if meta["ai_generated"]:
            model = f", model {meta['model']}" if meta.get("model") else ""
            print(f"{path}: AI-generated ({meta.get('method', '?')}{model}; {meta.get('software', '?')}); {seen}",
                  file=human)
        else:
            print(f"{path}: no AI-generated mark in its metadata; {seen}", file=human)
    write_json(rows, args.json_path)
    return 1 if failed else 0

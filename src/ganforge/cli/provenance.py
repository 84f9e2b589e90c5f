"""``ganforge provenance IMAGE...``: what image files say about their making (the XMP
"AI-generated" packet ganforge writes: IPTC digital source type, software, method, model, model
hash, parameters) and whether they carry ganforge's invisible watermark. A video (by its suffix)
is read from its container tags, and its watermark detected on its first frames."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ._common import add_json, add_quiet, write_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("provenance", help="report the provenance metadata (AI-generated mark) of images and videos")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image or video files, or folders of images")
    parser.add_argument("--fingerprint", metavar="RUN", default=None,
                        help="also read the fingerprint of a run trained with --fingerprint (its run directory or "
                             "its fingerprint.safetensors) from each image")
    add_json(parser, "one object per image: path, metadata, watermark (detected, bit_accuracy, p_value) "
                     "[, fingerprint (the same)]")
    add_quiet(parser)
    parser.set_defaults(func=_provenance)


def _provenance(args: argparse.Namespace) -> int:
    from ..errors import GanforgeError
    from ..provenance import read_provenance
    from ..imageio import open_image
    from ..watermark import detect
    from ._files import image_inputs
    from .video import is_video

    human = sys.stderr if args.json_path == "-" else sys.stdout
    rows, failed = [], 0
    fingerprint = None
    if args.fingerprint:
        from ..fingerprint import load

        fingerprint = load(args.fingerprint)
    for path in image_inputs(args.images):
        try:
            if is_video(str(path)):
                meta, frames = _video(path)
            else:
                meta, frames = read_provenance(path), [np.asarray(open_image(path, "RGB"))]
        except GanforgeError as exc:  # one unreadable file does not hide the others
            print(f"ganforge: {exc}", file=sys.stderr)
            failed += 1
            continue
        mark = _best([detect(frame).as_dict() for frame in frames])  # a video: the best of its first frames
        row = {"path": str(path), "metadata": meta, "watermark": mark}
        seen = (f"watermark found (bits {mark['bit_accuracy']:.2f}, p = {mark['p_value']:.1e})" if mark["detected"]
                else "no watermark")
        if fingerprint is not None:
            import torch

            x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            found = row["fingerprint"] = _best(fingerprint.detect(x))
            seen += (f"; the run's fingerprint found (bits {found['bit_accuracy']:.2f}, p = {found['p_value']:.1e})"
                     if found["detected"] else f"; not the run's fingerprint (bits {found['bit_accuracy']:.2f})")
        rows.append(row)
        if meta["ai_generated"]:
            model = f", model {meta['model']}" if meta.get("model") else ""
            print(f"{path}: AI-generated ({meta.get('method', '?')}{model}; {meta.get('software', '?')}); {seen}",
                  file=human)
        else:
            print(f"{path}: no AI-generated mark in its metadata; {seen}", file=human)
    write_json(rows, args.json_path)
    return 1 if failed else 0


VIDEO_FRAMES = 8  # frames a video's watermark (and fingerprint) is detected on (the best of them is reported)


def _best(found: list[dict]) -> dict:
    return max(found, key=lambda m: (m["detected"], m["bit_accuracy"]))


def _video(path) -> tuple[dict, list[np.ndarray]]:
    """A video's provenance: its container tags, and its first frames (RGB uint8) to look for marks on."""
    from itertools import islice

    from ..provenance import parse_video_metadata
    from ..video.io import iter_frames, probe

    info = probe(path)
    meta = {"format": info.codec, **parse_video_metadata(info.tags)}
    frames = list(islice(iter_frames(path), VIDEO_FRAMES))
    if not frames:
        from ..errors import GanforgeError

        raise GanforgeError(f"{path.name}: no video frames to look for a watermark on")
    return meta, frames

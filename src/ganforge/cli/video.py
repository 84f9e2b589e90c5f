"""``ganforge stylize-video``, ``ganforge eval-video`` and ``ganforge video``: thin wrappers over
:mod:`ganforge.video`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import (add_json, add_network_options, add_quiet, add_resume, add_style_controls, add_watermark,
                      require_fp32_metric, write_json)

DEFAULT_STRENGTH = 0.7  # = ganforge.video.temporal.DEFAULT_STRENGTH (not imported: it pulls in PyAV at start-up)
FLOWS = ("dis", "farneback", "raft-small", "raft-large")  # = ganforge.video.flow.FLOW_METHODS (same reason)
FLOW_HELP = ("optical flow: dis (default) or farneback (OpenCV, no weights), raft-small or raft-large (torchvision's "
             "RAFT on a CUDA GPU when there is one; needs its weights: ganforge weights fetch raft-small)")


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def is_video(path: str) -> bool:
    """Whether a per-image command's input is a video (by its suffix): it then goes through the
    shared video path (:func:`run_video_op`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def add_video_options(p: argparse.ArgumentParser, default_strength: float, why: str = "") -> None:
    """The options of the one video path, the same for every command that takes a video."""
    p.add_argument("--temporal-strength", type=float, default=default_strength,
                   help="blend of the flow-warped previous output into each frame where the flow is trusted "
                        f"(0 = independent frames; default {default_strength}" + (f": {why}" if why else "") + ")")
    p.add_argument("--temporal-contrast", default="restore", choices=["restore", "none"],
                   help="restore: after blending, raise the local texture contrast back to the current frame's "
                        "(keeps the style; default); none: the plain blend (smoother over long spans, less stylised)")
    p.add_argument("--flow", default="dis", choices=FLOWS, help=FLOW_HELP)
    p.add_argument("--batch-size", type=int, default=4, help="frames per network pass")
    p.add_argument("--chunk", type=int, default=24, help="frames per resumable chunk")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower = better, larger)")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="drop the audio stream")
    add_resume(p)


def run_video_op(args: argparse.Namespace, src: str, op, settings: dict, desc: str, out_scale: float = 1.0) -> dict:
    """Every video command's body: ``op`` (N×3×H×W in [0, 1] -> N×3×H'×W') over the frames of
    ``src`` into ``args.out`` through :func:`ganforge.video.pipeline.process_video` with the
    options of :func:`add_video_options`; prints and writes (``--json``) the summary."""
    from ..provenance import Provenance
    from ..video.pipeline import process_video

    # a setting that names a file keeps its last component only (a provenance never holds a path)
    params = {k: (Path(v).name if isinstance(v, str) and ("/" in v or "\\" in v) else v) for k, v in settings.items()}
    prov = Provenance(desc.split(" ")[0], None, None, params, getattr(args, "watermark", True))
    summary = process_video(src, args.out, op, temporal_strength=args.temporal_strength, flow=args.flow,
                            temporal_contrast=args.temporal_contrast, chunk_frames=args.chunk,
                            batch_size=args.batch_size, progress=not args.quiet, resume=args.resume == "auto",
                            keep_audio=args.audio, crf=args.crf,
                            settings={**settings, "crf": args.crf, "audio": args.audio}, desc=desc,
                            out_scale=out_scale, provenance=prov)
    _say(summary, args.json_path)
    return summary


def single_video_input(inputs: list[str], out: str) -> str | None:
    """The video among a per-image command's inputs, or None when there is none. A video must be the
    only input and ``--out`` a video file or a folder (PNG sequence); anything else, or a file that
    is no readable video, is one line, before any network loads."""
    from ..errors import GanforgeError

    videos = [i for i in inputs if is_video(i)]
    if not videos:
        return None
    if len(inputs) > 1:
        raise GanforgeError(f"a video ({videos[0]}) must be the only input; give images and videos in separate runs")
    if Path(out).suffix and Path(out).suffix.lower() not in VIDEO_SUFFIXES:
        raise GanforgeError(f"--out {out}: for a video input give a video file ({', '.join(VIDEO_SUFFIXES)}) "
                            "or a folder (PNG sequence)")
    from ..video.io import probe

    probe(videos[0])
    return videos[0]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize-video", help="restyle a video with temporal consistency (resumable)",
                       description="Stylise every frame of IN (any container/codec FFmpeg reads) and write OUT "
                                   "(.mp4 H.264, or a folder for a PNG sequence) with the same frame count, fps, "
                                   "rotation and audio. Style statistics are computed once per clip. The job is "
                                   "resumable: run the same command again after a kill.")
    p.add_argument("input", metavar="IN", help="input video")
    add_style_controls(p, style_help="style image[:weight] (repeat to mix styles, e.g. --style a.jpg:0.7 "
                                     "--style b.jpg:0.3); --out: .mp4, or a folder name for a PNG sequence",
                       colour_help="colour preservation (match: styles recoloured to the first frame once)")
    p.add_argument("--max-size", type=int, help="cap the long side for processing (output keeps input size)")
    p.add_argument("--tile", type=int, help="tiled inference with tiles of this size (adain/wct)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap blended linearly (px)")
    p.add_argument("--encoder", help="encoder weights name or path")
    p.add_argument("--decoder", help="decoder weights name or path (adain/wct)")
    p.add_argument("--style-size", type=int, default=512, help="long side the style images are used at")
    p.add_argument("--iterations", type=int, help="gatys: optimiser iterations per frame")
    add_video_options(p, DEFAULT_STRENGTH, "on cutBunny short-term flicker E_warp(k=1) 0.24x per-frame at the "
                                           "same style distance; higher = steadier")
    add_network_options(p)
    add_watermark(p)
    add_quiet(p)
    add_json(p, "the run summary")
    p.set_defaults(func=run_stylize_video)

    e = sub.add_parser("eval-video", help="flicker (warping error, k=1 and k=10) and style distance of a stylised video",
                       description="Warping error of STYLISED against the optical flow of ORIGINAL (Lai et al. 2018), "
                                   "and with --style the mean per-frame style distance.")
    e.add_argument("original", metavar="ORIGINAL")
    e.add_argument("stylised", metavar="STYLISED")
    e.add_argument("--k", default="1,10", help="frame distances (default 1,10: short- and long-term)")
    e.add_argument("--flow", default="dis", choices=FLOWS, help=FLOW_HELP)
    e.add_argument("--style", help="style image: also report the mean per-frame style distance")
    e.add_argument("--style-every", type=int, default=1, help="measure the style distance on every N-th frame")
    e.add_argument("--encoder", help="VGG19 for the style distance (default: one found on this machine, else colour statistics)")
    e.add_argument("--max-frames", type=int, help="only the first N frames")
    add_network_options(e)
    add_quiet(e)
    add_json(e)
    e.set_defaults(func=run_eval_video)

    v = sub.add_parser("video", help="smooth random latent walk of a trained GAN as a video",
                       description="Slerp through random keyframe latents (with class morphs for conditional runs); "
                                   "style-based generators (stylegan2) step linearly between the keyframes' w, "
                                   "each mapped once with its class and truncation.")
    v.add_argument("run", metavar="RUN", help="GAN run directory, or a generator written by ganforge export")
    v.add_argument("--seconds", type=float, required=True)
    v.add_argument("--out", required=True, help=".mp4 (or a folder: PNG sequence)")
    v.add_argument("--fps", type=int, default=24)
    v.add_argument("--key-seconds", type=float, default=2.0, help="seconds between keyframes")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--classes", help="conditional runs: keyframe classes in turn, e.g. 3,5,8 (default: all)")
    v.add_argument("--truncation", type=float, default=1.0,
                   help="resample |z| above this; stylegan2: psi toward the mean w (per class), 0 allowed")
    v.add_argument("--scale", type=int, help="integer upscaling (default: long side >= 256 px)")
    v.add_argument("--checkpoint", default="latest")
    add_network_options(v)
    add_quiet(v)
    add_json(v, "the summary")
    add_watermark(v)
    v.set_defaults(func=run_video)


def _say(summary: dict, json_path: str | None) -> None:
    print(json.dumps(summary), file=sys.stderr if json_path == "-" else sys.stdout)
    write_json(summary, json_path)


def run_stylize_video(args: argparse.Namespace) -> int:
    from ..style import Stylizer
    from ..style.controls import StyleError, parse_style_spec
    from ..video.io import iter_frames, probe
    from ..video.stylize import stylizer_op

    if args.iterations is not None and args.method != "gatys":
        raise StyleError("--iterations is a gatys option")
    probe(args.input)  # bad input: one line before any network loads
    styles = [parse_style_spec(s) for s in args.style]
    st = Stylizer(args.method, encoder=args.encoder, decoder=args.decoder, precision=args.precision,
                  device=args.device, style_size=args.style_size)
    first = next(iter_frames(args.input)) if args.colour == "match" else None
    gatys = {"iterations": args.iterations} if args.iterations is not None else {}
    op = stylizer_op(st, styles, first_frame=first, alpha=args.alpha, colour=args.colour, max_size=args.max_size,
                     tile=args.tile, overlap=args.overlap, **gatys)
    settings = {"styles": [[str(p), w] for p, w in styles], "method": args.method, "alpha": args.alpha,
                "colour": args.colour, "max_size": args.max_size, "tile": args.tile, "overlap": args.overlap,
                "encoder": args.encoder, "decoder": args.decoder, "style_size": args.style_size,
                "precision": st.precision, "device": str(st.device), **gatys}
    run_video_op(args, args.input, op, settings, f"stylize-video ({args.method})")
    return 0


def run_eval_video(args: argparse.Namespace) -> int:
    from ..errors import GanforgeError
    from ..video.metrics import style_distance, warping_error

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise GanforgeError(f"--k must be a comma list of integers, got {args.k!r}") from None
    require_fp32_metric(args.precision, "eval-video")
    result = warping_error(args.original, args.stylised, ks, flow=args.flow, max_frames=args.max_frames,
                           device=args.device, progress=not args.quiet)
    if args.style:
        result.update(style_distance(args.stylised, args.style, every=args.style_every, encoder=args.encoder,
                                     max_frames=args.max_frames, device=args.device))
    out = sys.stderr if args.json_path == "-" else sys.stdout
    print(f"frames: {result['frames']}  flow: {result['flow']} (on the original)", file=out)
    for k in ks:
        v = result[f"E_warp_k{k}"]
        print(f"E_warp(k={k}) = {'n/a' if v is None else f'{v:.6f}'}  (trusted pixels {result[f'trusted_fraction_k{k}'] or 0:.1%})",
              file=out)
    print(f"  {result['formula']}", file=out)
    print(f"  scale: {result['scale']}", file=out)
    if args.style:
        print(f"style distance = {result['style_distance']:.6f} ({result['style_distance_kind']}; "
              f"{result['style_distance_definition']})", file=out)
    write_json(result, args.json_path)
    return 0


def run_video(args: argparse.Namespace) -> int:
    from ..device import autocast
    from ..errors import GanforgeError
    from ..sample import load_generator
    from ..video.walk import latent_walk

    try:
        classes = [int(c) for c in args.classes.split(",") if c.strip()] if args.classes else None
    except ValueError:
        raise GanforgeError(f"--classes must be a comma list of integers, got {args.classes!r}") from None
    from ..provenance import model_provenance

    gen = load_generator(args.run, checkpoint_name=args.checkpoint).to(args.device, args.precision)
    prov = model_provenance("video", args.run, {"seconds": args.seconds, "seed": args.seed, "classes": classes,
                                                "truncation": args.truncation}, watermark=args.watermark)
    with autocast(gen.precision, gen.device):  # latent_walk's own tensor work too, not only the generator's
        summary = latent_walk(gen, args.seconds, args.out, fps=args.fps, key_seconds=args.key_seconds,
                              seed=args.seed, classes=classes, truncation=args.truncation, scale=args.scale,
                              progress=not args.quiet, provenance=prov)
    _say(summary, args.json_path)
    return 0

"""``ganforge sample`` and ``ganforge interpolate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GanforgeError
from ..text.captions import read_prompts_file
from ._common import add_json, add_network_options, add_quiet, add_watermark, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run", help="run directory, or a generator written by ganforge export (.safetensors)")
    p.add_argument("--n", type=int, default=64)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="grid image (.png/.jpg)")
    out.add_argument("--out-dir", help="folder: one PNG per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class", dest="label", type=int, default=None, help="class index (conditional runs)")
    add_prompt_options(p, "--n images per prompt, one grid row per prompt")
    p.add_argument("--truncation", type=float, default=1.0,
                   help="resample |z| above this; stylegan2: psi toward the mean w, 0 allowed (< 1 trades variety for quality)")
    p.add_argument("--raw", action="store_true", help="use the raw generator instead of its EMA")
    p.add_argument("--checkpoint", default="latest", help="latest, best or step-NNNNNNN (run directories)")
    p.add_argument("--nrow", type=int, default=None)
    add_watermark(p)
    add_network_options(p)
    add_quiet(p)
    add_json(p, "the summary (files written, seed, truncation, step)")
    p.set_defaults(func=_sample)

    q = sub.add_parser("interpolate", help="latent walk between seeds as a GIF or MP4 (slerp in z; stylegan2: linear in W)",
                       description="A closed walk through the seeds' latents: slerp between their z, or for "
                                   "style-based generators (stylegan2) straight lines between their w, each seed "
                                   "mapped once with its own class (--class, or the one `sample --seed` draws).")
    q.add_argument("run", help="run directory, or a generator written by ganforge export (.safetensors)")
    q.add_argument("--out", required=True, help="walk.gif or walk.mp4")
    q.add_argument("--seeds", default="0,1,2,3", help="comma list of seeds to visit (loops back)")
    q.add_argument("--frames", type=int, default=24, help="frames between two seeds")
    q.add_argument("--fps", type=int, default=24)
    q.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscaling of each frame")
    q.add_argument("--class", dest="label", type=int, default=None)
    add_prompt_options(q, "text runs: a closed walk from prompt to prompt with one latent (the first of --seeds)")
    q.add_argument("--truncation", type=float, default=1.0,
                   help="resample |z| above this; stylegan2: psi toward the mean w, 0 allowed")
    q.add_argument("--checkpoint", default="latest")
    add_network_options(q)
    add_quiet(q)
    add_json(q, "the summary (file written, seeds, frames)")
    add_watermark(q)
    q.set_defaults(func=_interpolate)


def add_prompt_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--prompt", dest="prompts", action="append", default=None, metavar="TEXT",
                   help=f"text runs: draw from this description (repeatable; {what})")
    p.add_argument("--prompts", dest="prompts_file", default=None, metavar="FILE", help="text runs: prompts, one per line")


def read_prompts(args: argparse.Namespace, gen) -> list[str] | None:
    """The prompts given (--prompt, then --prompts FILE's lines); a one-line error for prompts
    given to a run without text, or none given to a text run."""
    prompts = list(args.prompts or [])
    if args.prompts_file:
        prompts += read_prompts_file(args.prompts_file)
    if prompts and not gen.is_text:
        raise GanforgeError(f"{args.run} was not trained on text (train with --text); it takes no --prompt")
    if gen.is_text and not prompts:
        raise GanforgeError(f"{args.run} is a text-to-image run: give --prompt TEXT (or --prompts FILE)")
    if prompts and args.label is not None:
        raise GanforgeError("give --prompt or --class, not both")
    return prompts or None


def _summary(args: argparse.Namespace, gen, **fields) -> dict:
    return {"run": str(args.run), "step": int(gen.step), "checkpoint": args.checkpoint, "device": str(gen.device),
            "precision": gen.precision, "truncation": args.truncation, "class": args.label, **fields}


def _sample(args: argparse.Namespace) -> int:
    import sys

    import torch
    from tqdm.auto import tqdm

    from ..imageio import save_image
    from ..provenance import model_provenance
    from ..sample import load_generator, save_grid

    if args.n < 1:
        raise GanforgeError("--n must be at least 1")
    gen = load_generator(args.run, checkpoint_name=args.checkpoint).to(args.device, args.precision)
    prompts = read_prompts(args, gen)
    w_psi = args.truncation if gen.w_space else 1.0  # W-space generators truncate toward w_avg
    z = gen.latents(args.n, args.seed, 1.0 if gen.w_space else args.truncation)
    if prompts:  # n per prompt, the same latents in every prompt's row
        labels = gen.embed(prompts).repeat_interleave(args.n, dim=0)
        z = z.repeat(len(prompts), 1)
    else:
        labels = gen.labels(args.n, args.label, args.seed)
    chunk = 256  # Generator.generate's own batch: the bar moves once per batch, outputs are unchanged
    parts = []
    for i in tqdm(range(0, len(z), chunk), desc="sampling", unit="batch", disable=args.quiet or len(z) <= chunk):
        parts.append(gen.generate(z[i:i + chunk], None if labels is None else labels[i:i + chunk], ema=not args.raw,
                                  truncation=w_psi))
    images = torch.cat(parts)
    human = sys.stderr if args.json_path == "-" else sys.stdout
    prov = model_provenance("sample", args.run, {"seed": args.seed, "n": args.n, "label": args.label,
                                                  "truncation": args.truncation, "ema": not args.raw, "step": gen.step,
                                                  **({"prompts": prompts} if prompts else {})},
                            watermark=args.watermark)
    if args.out:
        nrow = args.nrow or (args.n if prompts and len(prompts) > 1 else None)  # one row per prompt
        written = [str(save_grid(images, args.out, nrow=nrow, provenance=prov))]
        print(written[0], file=human)
    else:
        folder = Path(args.out_dir)
        names = ([f"prompt{i // args.n:03d}-seed{args.seed}-{i % args.n:05d}.png" for i in range(len(images))]
                 if prompts else [f"seed{args.seed}-{i:05d}.png" for i in range(len(images))])
        written = [str(save_image(img, folder / name, provenance=prov))
                   for name, img in zip(names, tqdm(images, desc="writing", unit="img", disable=args.quiet))]
        if prompts:
            (folder / "prompts.txt").write_text("".join(f"prompt{i:03d}\t{t}\n" for i, t in enumerate(prompts)),
                                                encoding="utf-8")
        print(f"{len(images)} images in {folder}", file=human)
    write_json(_summary(args, gen, n=args.n, seed=args.seed, ema=not args.raw, files=written,
                        **({"prompts": prompts} if prompts else {})), args.json_path)
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    import sys

    from ..sample import interpolation_frames, load_generator, write_video

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise GanforgeError(f"--seeds must be a comma list of integers, got {args.seeds!r}") from None
    gen = load_generator(args.run, checkpoint_name=args.checkpoint).to(args.device, args.precision)
    from ..provenance import model_provenance

    prompts = read_prompts(args, gen)
    if prompts:
        from ..sample import prompt_walk_frames

        frames = prompt_walk_frames(gen, prompts, seeds[0] if seeds else 0, args.frames, truncation=args.truncation)
    else:
        frames = interpolation_frames(gen, seeds, args.frames, label=args.label, truncation=args.truncation)
    params = {"seeds": seeds, "frames": args.frames, "label": args.label, "truncation": args.truncation}
    if prompts:
        params["prompts"] = prompts
    prov = model_provenance("interpolate", args.run, params, watermark=args.watermark)
    out = write_video(frames, args.out, fps=args.fps, scale=args.scale, provenance=prov)
    print(out, file=sys.stderr if args.json_path == "-" else sys.stdout)
    write_json(_summary(args, gen, seeds=seeds, frames=len(frames), fps=args.fps, file=str(out),
                        **({"prompts": prompts} if prompts else {})), args.json_path)
    return 0

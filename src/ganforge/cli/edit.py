"""``ganforge edit`` (move a latent or an image along a direction, or mix two) and ``ganforge
directions`` (find SeFa / PCA / boundary directions and draw what each does)."""

from __future__ import annotations

import argparse

from ..errors import GanforgeError
from ._common import add_json, add_network_options, add_quiet, add_watermark, write_json

MODEL_HELP = "stylegan2 run directory or export, official StyleGAN2-ADA .pkl, or a published name"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="move a latent or an image (projected first) along a semantic direction",
                       description="Edits LATENT_OR_IMAGE (a latent.npz/.safetensors from `ganforge project`, or an "
                                   "image, projected first) along --direction by --strength standard deviations of W "
                                   "(typically -3..3); --mix IMAGE2 --layers A-B takes those layers' styles from a "
                                   "second image or latent instead.")
    p.add_argument("item", metavar="LATENT_OR_IMAGE")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--direction", help="sefa-K, pca-K (optional @A-B: ws A..B) or a name in --directions")
    p.add_argument("--strength", type=float, default=2.0, help="in standard deviations of W (typically -3..3)")
    p.add_argument("--directions", help="a directions file from `ganforge directions`")
    p.add_argument("--layers", default=None, help="ws range A-B the edit acts on (default: the direction's own)")
    p.add_argument("--mix", metavar="LATENT_OR_IMAGE2", help="style mixing: take --layers from this one")
    p.add_argument("--out", required=True, help="edited image (.png/.jpg); the latent is written beside it (.npz)")
    p.add_argument("--project-steps", type=int, default=300, help="projection steps when an image is given")
    p.add_argument("--seed", type=int, default=0)
    add_network_options(p)
    add_quiet(p)
    add_json(p, "the summary")
    add_watermark(p)
    p.set_defaults(func=_edit)

    d = sub.add_parser("directions", help="find semantic directions (SeFa, PCA, class boundary) and draw a grid",
                       description="Finds directions in W without labels (sefa: eigenvectors of the style affine "
                                   "weights; pca: principal axes of mapped z) or with them (boundary: a linear "
                                   "classifier between a conditional model's classes, or two folders of example "
                                   "images, projected). --grid draws one row per direction, strengths -3..3 across.")
    d.add_argument("model", help=MODEL_HELP)
    d.add_argument("--method", default="sefa", choices=["sefa", "pca", "boundary"])
    d.add_argument("--out", required=True, help="directions file (.safetensors)")
    d.add_argument("--grid", help="image showing what each direction does")
    d.add_argument("--k", type=int, default=8, help="how many directions (sefa, pca)")
    d.add_argument("--layers", default=None, help="ws range A-B (sefa: the affines factorised; all: applied to)")
    d.add_argument("--class", dest="label", type=int, default=None, help="boundary: toward this class")
    d.add_argument("--from-class", dest="source", type=int, default=None,
                   help="boundary: away from this class (default: all the others)")
    d.add_argument("--positive", help="boundary: folder of images that have the attribute")
    d.add_argument("--negative", help="boundary: folder of images that lack it")
    d.add_argument("--name", default="boundary", help="boundary from folders: the direction's name")
    d.add_argument("--project-steps", type=int, default=200, help="boundary from folders: projection steps per image")
    d.add_argument("--seed", type=int, default=0, help="grid: the seed of the image edited")
    add_network_options(d)
    add_quiet(d)
    add_json(d, "the summary (names, files)")
    add_watermark(d)
    d.set_defaults(func=_directions)


def _human(args):
    import sys

    return sys.stderr if args.json_path == "-" else sys.stdout


def _edit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..editing import edit, mix, save_latent
    from ..editing.common import load_model
    from ..imageio import save_image

    if (args.direction is None) == (args.mix is None):
        raise GanforgeError("give --direction (an edit) or --mix LATENT_OR_IMAGE2 --layers A-B (style mixing)")
    gen = load_model(args.model, args.device, args.precision)
    kwargs = {"project_steps": args.project_steps, "seed": args.seed}
    out = Path(args.out)
    if args.mix:
        if args.layers is None:
            raise GanforgeError("--mix needs --layers A-B (the ws taken from the second image)")
        image, ws = mix(gen, args.item, args.mix, args.layers, **kwargs)
        summary = {"source": args.item, "mix": args.mix, "layers": args.layers}
        noise = None
    else:
        result = edit(gen, args.item, args.direction, args.strength, layers=args.layers, directions=args.directions,
                      **kwargs)
        image, ws, summary, noise = result.image, result.ws, result.summary(), result.latent.noise
    from ..provenance import model_provenance

    prov = model_provenance("edit", args.model, {k: v for k, v in summary.items() if k not in ("source", "mix")},
                            watermark=args.watermark)
    save_image(image[0], out, provenance=prov)
    latent = save_latent(out.with_suffix(".npz"), ws, noise=noise, info=summary)
    print(out, file=_human(args))
    write_json({"model": args.model, **summary, "files": {"image": str(out), "latent": str(latent)}}, args.json_path)
    return 0


def _directions(args: argparse.Namespace) -> int:
    from ..editing import find_directions, save_direction_grid
    from ..editing.common import load_model

    gen = load_model(args.model, args.device, args.precision)
    if args.method == "boundary":
        if args.label is not None:
            kwargs = {"target": args.label, "source": args.source, "layers": args.layers}
        elif args.positive and args.negative:
            kwargs = {"positive": args.positive, "negative": args.negative, "name": args.name,
                      "steps": args.project_steps, "layers": args.layers}
        else:
            raise GanforgeError("--method boundary needs --class C (a conditional model) or --positive DIR --negative DIR")
    else:
        kwargs = {"k": args.k, "layers": args.layers}
    dirs = find_directions(gen, args.method, **kwargs)
    files = {"directions": str(dirs.save(args.out))}
    if args.grid:
        from ..provenance import model_provenance

        prov = model_provenance("directions", args.model, {"method": args.method, "seed": args.seed},
                                watermark=args.watermark)
        files["grid"] = str(save_direction_grid(gen, dirs, args.grid, seed=args.seed, provenance=prov))
    print(files["directions"], file=_human(args))
    write_json({"model": args.model, "method": args.method, "names": dirs.names, "scales": dirs.scales.tolist(),
                "layers": [list(r) for r in dirs.layers], "info": dirs.info, "files": files}, args.json_path)
    return 0

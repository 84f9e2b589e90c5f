"""``ganforge eval A B`` (FID/KID/IS/PR/DC with protocol JSON, ``--nearest K`` memorisation report)
and ``ganforge similarity A B`` (SSIM and feature cosine, in percent)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ._common import add_json, add_network_options, add_quiet, require_fp32_metric, write_json



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="FID, KID, IS, precision/recall of A against reference B, with the protocol",
        description="A: run directory (EMA samples), image folder or dataset split (mnist:test, ...); "
                    "B: the reference. Every number is written with its protocol (--json PATH).")
    p.add_argument("source_a", help="set under test: run dir, folder, or dataset (e.g. mnist:test)")
    p.add_argument("source_b", nargs="?", default=None,
                   help="reference set: dataset split or folder (e.g. mnist:train); may be left out with --utility")
    p.add_argument("--metrics", default="fid,kid",
                   help="comma list of fid,kid,is,pr,dc (default fid,kid); for text-to-image runs also rprecision "
                        "(the run's own encoder) and clip (CLIP score, ViT-B/32; skipped in one line without its "
                        "weights), which need no B")
    p.add_argument("--extractor", default="auto",
                   help="inception | mnist | fashion-mnist | auto (domain classifier for MNIST-like "
                        "datasets, else inception)")
    p.add_argument("--n", type=int, default=None, help="samples from A (required for run dirs); also caps B")
    p.add_argument("--n-ref", type=int, default=None, help="samples from B (default: --n)")
    p.add_argument("--seed", type=int, default=0, help="sampling / subset seed (default 0)")
    p.add_argument("--resolution", type=int, default=None, help="resize folders/datasets to this size")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation for run-dir sampling")
    p.add_argument("--prompts", dest="prompts_file", default=None, metavar="FILE",
                   help="text runs: prompts to draw from, one per line (default: the run's training captions, "
                        "weighted by how many images hold each); drawn seeded by --seed")
    p.add_argument("--clip-model", default=None, metavar="MODEL",
                   help="CLIP for --metrics clip: ViT-B-32 (default; weights clip-vit-b-32-openai) or "
                        "local-dir:PATH (an open_clip model folder)")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--pr-k", type=int, default=3, help="k of the k-NN manifolds (precision/recall)")
    p.add_argument("--is-splits", type=int, default=10)
    p.add_argument("--utility", default=None, metavar="REF",
                   help="also the downstream utility of a conditional run A: train a fixed small classifier on "
                        "--utility-n of its samples and test it on the labelled real split REF (e.g. mnist:test, a "
                        "class-folder path): 'train on synthetic, test on real', protocol recorded")
    p.add_argument("--utility-n", type=int, default=None,
                   help="generated images the utility classifier trains on (default 10000, balanced over classes)")
    add_json(p, "the results and their protocol")
    p.add_argument("--nearest", type=int, default=0, metavar="K",
                   help="also write a nearest-neighbour (memorisation) report with K neighbours, B = train set")
    p.add_argument("--out", default="eval-nearest", help="folder for the --nearest grid/histogram/json")
    add_quiet(p)
    add_network_options(p)
    p.set_defaults(func=_eval)

    s = sub.add_parser("similarity", help="SSIM and feature cosine similarity (%%) of two images or folders")
    s.add_argument("a", help="image file or folder (paired with B by sorted file name)")
    s.add_argument("b", help="image file or folder")
    s.add_argument("--features", default="inception", help="inception | mnist | fashion-mnist | none")
    add_json(s, "the scores (per pair and mean)")
    add_quiet(s)
    add_network_options(s)
    s.set_defaults(func=_similarity)


def _eval(args: argparse.Namespace) -> int:
    from ..metrics.evaluation import EvalWarning, evaluate, load_source, reference_resolution
    from ..metrics.evaluation import write_json as write_eval_json
    from ..metrics.extractors import auto_extractor, get_extractor

    require_fp32_metric(args.precision, "eval")
    if args.nearest > 0 and args.source_b is None:
        from ..errors import GanforgeError

        raise GanforgeError("--nearest needs the training set as B")
    if args.nearest > 0:  # a differentially private run's training images stay out of reports
        from ..train.dp import refuse_nearest

        refuse_nearest(args.source_a)
    progress = not args.quiet and sys.stderr.isatty()
    human = sys.stderr if args.json_path == "-" else sys.stdout
    from ..metrics.evaluation import TEXT_METRICS, MetricSkipped, parse_metrics

    text_only = all(m in TEXT_METRICS for m in parse_metrics(args.metrics))
    if args.source_b is None and args.utility is None and not text_only:
        from ..errors import GanforgeError

        raise GanforgeError("eval needs a reference set B (e.g. mnist:train), or --utility REF for the utility alone")
    utility = _utility(args, progress, human) if args.utility is not None else None
    if args.source_b is None and not text_only:
        _write_utility_only(utility, args.json_path)
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvalWarning)
        results = evaluate(args.source_a, args.source_b, metrics=args.metrics, extractor=args.extractor, n=args.n,
                           n_b=args.n_ref, seed=args.seed, resolution=args.resolution,
                           kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, pr_k=args.pr_k,
                           is_splits=args.is_splits, truncation=args.truncation, progress=progress,
                           device=args.device, prompts=args.prompts_file, clip_model=args.clip_model)
    for w in caught:
        print(str(w.message) if issubclass(w.category, MetricSkipped) else f"warning: {w.message}", file=sys.stderr)
    for r in results:
        print(r.summary(), file=human)
    extra = {} if utility is None else {"utility": utility}
    skipped = [{"metric": w.message.metric, "reason": str(w.message)} for w in caught
               if isinstance(w.message, MetricSkipped)]
    if skipped:
        extra["skipped"] = skipped
    if args.nearest > 0:
        from ..metrics.nearest import nearest_report

        name = auto_extractor(args.source_b, args.source_a) if args.extractor == "auto" else args.extractor
        gen = load_source(args.source_a, n=args.n, seed=args.seed, resolution=args.resolution,
                          truncation=args.truncation, progress=progress, prompts=args.prompts_file)
        at = reference_resolution(gen, args.resolution)  # B as the run's training data was
        train = load_source(args.source_b, resolution=at, progress=progress)
        held = None
        base, _, split = args.source_b.partition(":")
        if split == "train" or (not split and base.lower() in ("mnist", "fashion-mnist")):
            try:
                held = load_source(f"{base}:test", n=min(len(gen.images), 2000), seed=args.seed,
                                   resolution=at, progress=progress)
            except Exception:
                held = None
        report = nearest_report(gen, train, get_extractor(name, device=args.device), args.out, k=args.nearest, held_out=held,
                                progress=progress)
        extra["nearest"] = {k: report[k] for k in ("near_copy_fraction", "copy_threshold_pixel_rmse",
                                                   "nearest_pixel_rmse_median", "diversity")}
        print(f"nearest    {len(report['near_copies'])} of {report['n_generated']} samples flagged as near-copies "
              f"(pixel RMSE < {report['copy_threshold_pixel_rmse']:.4f}); diversity ratio "
              f"{report['diversity']['ratio']:.3f}; report in {args.out}/", file=human)
    if args.json_path == "-":
        import json

        print(json.dumps({"results": [r.as_dict() for r in results], **extra}, indent=2, default=str))
    elif args.json_path:
        print(f"wrote {write_eval_json(results, args.json_path, extra)}")
    return 0


def _utility(args: argparse.Namespace, progress: bool, human) -> dict:
    """TSTR accuracy of run A on --utility REF, checked and printed before any FID work."""
    from ..errors import GanforgeError
    from ..metrics.utility import DEFAULT_N, run_utility

    if not (Path(args.source_a) / "run.json").is_file():
        raise GanforgeError(f"--utility needs A to be a GAN run directory (a conditional one); {args.source_a} is not")
    n = DEFAULT_N if args.utility_n is None else args.utility_n
    out = run_utility(args.source_a, args.utility, n=n, seed=args.seed, device=args.device,
                      truncation=args.truncation, progress=progress)
    print(f"utility    {out['value']:.4f}  (train on {n} synthetic, test on {out['protocol']['n_test']} real "
          f"{args.utility}; protocol {out['protocol']['name']}-{out['protocol']['version']}, {out['seconds']:.0f} s)",
          file=human)
    return out


def _write_utility_only(utility: dict, json_path: str | None) -> None:
    if json_path == "-":
        import json

        print(json.dumps({"results": [], "utility": utility}, indent=2, default=str))
    elif json_path:
        from ..metrics.evaluation import write_json as write_eval_json

        print(f"wrote {write_eval_json([], json_path, {'utility': utility})}")


def _similarity(args: argparse.Namespace) -> int:
    from ..metrics import similarity

    require_fp32_metric(args.precision, "similarity")
    features = None if args.features.lower() == "none" else args.features
    out = similarity(args.a, args.b, features=features, device=args.device)
    cos = out["feature_cosine_percent"]
    human = sys.stderr if args.json_path == "-" else sys.stdout
    print(f"ssim {out['ssim_percent']:.2f}%  feature-cosine "
          f"{'n/a (' + out.get('feature_error', '') + ')' if cos is None else f'{cos:.2f}%'}  ({out['n_pairs']} pair(s))", file=human)
    write_json(out, args.json_path)
    return 0

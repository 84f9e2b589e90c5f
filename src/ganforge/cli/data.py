"""``ganforge data check DIR [--layout L] [--num-classes N] [--json PATH] [--quiet]`` and
``ganforge data prepare DIR --resolution R --out DATASET [--channels C] [--json PATH] [--quiet]`` and
``ganforge data digits --out DIR [--n N] [--resolution R] [--holdout red:7 ...] [--seed S] [--json PATH] [--quiet]``."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json, add_quiet, hide_alias, write_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect training data")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="report classes, sizes, modes, unreadable files and duplicates in an image folder"
    )
    check.add_argument("dir", help="folder of images (subfolders = classes), or of A/ + B/ or labels/ + images/")
    check.add_argument("--layout", default="auto", choices=("auto", "single", "paired", "unpaired", "labels"),
                       help="auto: labels/ + images/ is a label-map set, A/ + B/ paired when names match "
                            "(unpaired otherwise), anything else a plain folder; paired without A/ + B/: "
                            "side-by-side AB images")
    check.add_argument("--num-classes", type=int, default=None, metavar="N",
                       help="label maps: report maps with class ids >= N (implies labels for A/ + B/)")
    add_json(check, "the report")
    add_quiet(check)
    # old spelling: the bar was opt-in; it is now shown (on a terminal) unless --quiet
    hide_alias(check, "--progress", dest="progress_flag", action="store_true")
    check.set_defaults(func=_check)
    prepare = actions.add_parser(
        "prepare", help="decode and resize an image folder once into a dataset that training streams from disk")
    prepare.add_argument("dir", help="folder of images (subfolders = classes), or mnist / fashion-mnist / digits")
    prepare.add_argument("--resolution", type=int, required=True, metavar="R", help="square size R×R (power of two)")
    prepare.add_argument("--out", required=True, metavar="DATASET",
                         help="directory to write (images.npy + index.json); train with --data DATASET")
    prepare.add_argument("--channels", type=int, default=None, choices=(1, 3),
                         help="1 (grey) or 3 (RGB); default: the data's own")
    add_json(prepare, "a summary")
    add_quiet(prepare)
    prepare.set_defaults(func=_prepare)
    digits = actions.add_parser(
        "digits", help="write captioned coloured digits (x.png + x.txt, labels.json): offline text-to-image data")
    digits.add_argument("--out", required=True, metavar="DIR", help="new or empty folder to write")
    digits.add_argument("--n", type=int, default=10000, metavar="N", help="number of images (default 10000)")
    digits.add_argument("--resolution", type=int, default=32, metavar="R", help="square size R×R (default 32)")
    digits.add_argument("--holdout", nargs="*", default=["red:7"], metavar="COLOUR:DIGIT",
                        help="ink-digit pairs never written (default red:7; none: --holdout with no pair)")
    digits.add_argument("--source", default="auto", choices=("auto", "mnist", "digits"),
                        help="digit shapes: MNIST when its files are already here (auto), else scikit-learn's digits")
    digits.add_argument("--seed", type=int, default=0, help="colours, strokes and phrasings (default 0)")
    add_json(digits, "a summary")
    add_quiet(digits)
    digits.set_defaults(func=_digits)


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_dataset

    progress = not args.quiet and (args.progress_flag or sys.stderr.isatty())
    report = check_dataset(args.dir, layout=args.layout, num_classes=args.num_classes, progress=progress)
    if args.json_path is None:
        print(report.format())
    else:
        if args.json_path != "-":
            print(report.format())
        write_json(report.to_dict(), args.json_path)
    return 0  # a report, even when it lists broken files


def _prepare(args: argparse.Namespace) -> int:
    import time

    from ..data.prepared import open_prepared, prepare_dataset

    t0 = time.perf_counter()
    out = prepare_dataset(args.dir, args.out, resolution=args.resolution, channels=args.channels,
                          progress=not args.quiet)
    ds = open_prepared(out, verify="none")
    size = ds.images_path.stat().st_size
    info = {"dataset": str(out), "source": args.dir, "images": len(ds), "channels": ds.channels,
            "resolution": ds.resolution, "classes": ds.class_names, "skipped": len(ds.skipped),
            "bytes": size, "seconds": round(time.perf_counter() - t0, 3),
            "source_sha256": ds.index["source_sha256"]}
    if args.json_path != "-":
        skipped = f", {len(ds.skipped)} unreadable skipped" if ds.skipped else ""
        print(f"prepared {len(ds)} images ({ds.channels}×{ds.resolution}×{ds.resolution}, {ds.num_classes} "
              f"class{'es' if ds.num_classes != 1 else ''}{skipped}) into {out} ({size / 2**20:.1f} MiB) "
              f"in {info['seconds']:.1f} s; train with --data {out}")
    write_json(info, args.json_path)
    return 0


def _digits(args: argparse.Namespace) -> int:
    from ..text.digits import build_captioned_digits

    info = build_captioned_digits(args.out, n=args.n, resolution=args.resolution, seed=args.seed,
                                  holdout=tuple(args.holdout), source=args.source, progress=not args.quiet)
    if args.json_path != "-":
        held = ", ".join(info["holdout"]) or "none"
        print(f"wrote {info['images']} captioned digits ({info['resolution']}×{info['resolution']}, shapes from "
              f"{info['source']}, held out: {held}) into {info['out']} in {info['seconds']:.1f} s; "
              f"train with --data {info['out']} --text")
    write_json(info, args.json_path)
    return 0

"""``ganforge data check DIR [--layout L] [--num-classes N] [--json PATH] [--quiet]``."""

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

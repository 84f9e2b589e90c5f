"""``ganforge data check DIR [--json]``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect training data")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="report classes, sizes, modes, unreadable files and duplicates in an image folder"
    )
    check.add_argument("dir", help="folder of images (subfolders = classes)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--progress", action="store_true", help="show a progress bar")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_folder

    report = check_folder(args.dir, progress=args.progress)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0  # a report, even when it lists broken files

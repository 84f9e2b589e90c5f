"""``ganforge data check DIR [--json PATH] [--quiet]``."""

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
    check.add_argument("dir", help="folder of images (subfolders = classes)")
    add_json(check, "the report")
    add_quiet(check)
    # old spelling: the bar was opt-in; it is now shown (on a terminal) unless --quiet
    hide_alias(check, "--progress", dest="progress_flag", action="store_true")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_folder

    progress = not args.quiet and (args.progress_flag or sys.stderr.isatty())
    report = check_folder(args.dir, progress=progress)
    if args.json_path is None:
        print(report.format())
    else:
        if args.json_path != "-":
            print(report.format())
        write_json(report.to_dict(), args.json_path)
    return 0  # a report, even when it lists broken files

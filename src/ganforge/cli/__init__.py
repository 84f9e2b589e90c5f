"""The ``ganforge`` command. Thin: each module in this package adds its sub-commands through a
``register(subparsers)`` function and calls the public API; no logic lives here.

Errors a user can cause (``GanforgeError``) print one line and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import GanforgeError


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="ganforge", description="Train GANs and restyle images.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except GanforgeError as exc:
        if args.debug:
            raise
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

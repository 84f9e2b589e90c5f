"""One vocabulary for every sub-command (see tests/test_cli_vocabulary.py):

- ``--json PATH``: machine-readable output written to PATH (``-``: stdout; a bare ``--json`` also
  means stdout);
- ``--quiet``: no progress bars;
- ``--resume auto|never``: for every command that trains into a run directory;
- ``--precision auto|fp32|bf16|fp16`` (default ``auto``) and ``--device auto|cpu|cuda|cuda:N``
  (default ``auto``) for every command that runs a network.

Old spellings stay accepted for one release as hidden aliases (``help=argparse.SUPPRESS``).
Nothing here imports torch: ``ganforge --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..device import PRECISIONS  # noqa: F401 (the one list; re-exported for the commands)

RESUME = ("auto", "never")
HIDDEN = argparse.SUPPRESS


def add_json(parser: argparse.ArgumentParser, what: str = "the results") -> None:
    parser.add_argument("--json", dest="json_path", metavar="PATH", nargs="?", const="-", default=None,
                        help=f"write {what} as JSON to PATH ('-' or no PATH: stdout)")


def add_quiet(parser: argparse.ArgumentParser, *old: str) -> None:
    """``--quiet`` (dest ``quiet``); ``old`` spellings that meant the same (e.g. ``--no-progress``)
    are hidden aliases."""
    parser.add_argument("--quiet", *old, dest="quiet", action="store_true", help="no progress bars")


def hide_alias(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    parser.add_argument(*flags, help=HIDDEN, **kwargs)


def add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", default="auto", choices=RESUME,
                        help="auto: continue from the newest good checkpoint in the run directory; "
                             "never: refuse a directory that already holds a run")
    hide_alias(parser, "--no-resume", dest="resume", action="store_const", const="never")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="DEVICE", type=check_device,
                        help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N (default auto)")


def add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (bf16 where the CPU/GPU runs it natively, else fp32), fp32, bf16, "
                             "or fp16 (CUDA only) (default auto)")


def add_watermark(parser: argparse.ArgumentParser) -> None:
    """``--no-watermark`` (dest ``watermark``): the invisible mark of ganforge.watermark is on by default
    for every command that writes generated images; the XMP "AI-generated" metadata is written anyway."""
    parser.add_argument("--no-watermark", dest="watermark", action="store_false",
                        help="do not embed the invisible watermark (the XMP 'AI-generated' metadata is written anyway)")


def add_network_options(parser: argparse.ArgumentParser) -> None:
    add_device(parser)
    add_precision(parser)


def check_device(value: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")


def require_fp32_metric(precision: str, command: str) -> None:
    """Metrics are defined (and their protocols recorded) in fp32: ``--precision`` auto or fp32 only."""
    if precision not in ("auto", "fp32"):
        from ..errors import GanforgeError

        raise GanforgeError(f"metrics are defined (and their protocols recorded) in fp32; --precision {precision} "
                            f"is not available for {command} (auto means fp32 here)")


def write_json(data: Any, path: str | None) -> None:
    """Write ``data`` to ``path`` ('-': stdout). No-op when ``path`` is None."""
    if path is None:
        return
    text = json.dumps(data, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}")


def add_style_controls(parser: argparse.ArgumentParser, *, style_help: str, colour_help: str) -> None:
    """The image-stylisation controls ``stylize`` and ``stylize-video`` share, spelled alike."""
    parser.add_argument("--style", action="append", required=True, help=style_help)
    parser.add_argument("--out", required=True, help="output file, or folder for batches / PNG sequences")
    parser.add_argument("--method", default="adain", choices=["adain", "wct", "gatys"])
    parser.add_argument("--alpha", type=float, default=1.0, help="0 = content, 1 = full style")
    parser.add_argument("--colour", "--color", dest="colour", default="none",
                        choices=["none", "match", "luminance", "luminance-ycbcr"], help=colour_help)

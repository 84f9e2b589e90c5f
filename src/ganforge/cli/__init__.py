"""The ``ganforge`` command. Thin: each module in this package adds its sub-commands through a
``register(subparsers)`` function and calls the public API; no logic lives here.

Start-up is lazy: :data:`COMMANDS` names every sub-command with its module and one-line help, so
``ganforge --help`` lists them without importing anything heavy (no torch); only the module of the
chosen sub-command is imported and builds its full parser. The shared flag vocabulary lives in
:mod:`._common`.

Errors a user can cause (``GanforgeError``) and faults of the environment (an ``OSError`` such as
a full disk, a read-only or forbidden path, a missing file) print one line and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import GanforgeError, os_error_reason

# sub-command -> (module in this package, one-line help). Keep in step with each module's register().
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("audit", "membership inference on a GAN run: LOGAN (white-box) and GAN-Leaks (black-box), ROC AUC"),
    "data": ("data", "inspect training data"),
    "directions": ("edit", "find semantic directions in a StyleGAN's W (SeFa, PCA, class boundary) and draw them"),
    "demo": ("demo", "train a small conditional GAN offline and write an HTML report"),
    "edit": ("edit", "move a latent or an image along a semantic direction, or mix two images' styles"),
    "eval": ("eval", "FID, KID, IS, precision/recall of A against reference B, with the protocol"),
    "eval-video": ("video", "flicker (warping error k=1, k=10) and style distance of a stylised video"),
    "export": ("export", "write a run's generator as one self-describing .safetensors file"),
    "inpaint": ("inpaint", "fill holes in images with a trained inpainting GAN (known pixels kept exactly)"),
    "interpolate": ("sample", "latent walk between seeds as a GIF or MP4 (slerp in z; stylegan2: linear in W)"),
    "project": ("project", "find the latent of an image in a StyleGAN's W or W+ space (GAN inversion)"),
    "provenance": ("provenance", "report the provenance metadata (AI-generated mark) of images"),
    "sample": ("sample", "draw samples from a trained run"),
    "serve": ("serve", "web page and REST API for style transfer and sampling"),
    "similarity": ("eval", "SSIM and feature cosine similarity (%%) of two images or folders"),
    "stylize": ("style", "restyle images (AdaIN, WCT or Gatys)"),
    "stylize-video": ("video", "restyle a video with temporal consistency (resumable)"),
    "train": ("train", "train a GAN on an image folder or a standard dataset"),
    "train-inpainter": ("inpaint", "train an inpainting GAN (masks made on the fly) on an image folder"),
    "train-style": ("style", "train an AdaIN decoder for an encoder"),
    "train-upscaler": ("train_upscaler", "train an ESRGAN / SRResNet upscaler (L1 phase, then GAN phase; resumable)"),
    "translate": ("translate", "image-to-image: train or apply pix2pix, CycleGAN, SPADE"),
    "upscale": ("upscale", "super-resolve images ×2/×4 with ESRGAN / Real-ESRGAN networks (tiled)"),
    "video": ("video", "smooth random latent walk of a trained GAN as a video"),
    "weights": ("weights", "list, fetch and verify pretrained weights"),
}

# sub-commands that run a network: each has --device and --precision (default auto)
NETWORK_COMMANDS = ("demo", "eval", "eval-video", "inpaint", "interpolate", "sample", "serve", "similarity", "stylize",
                    "stylize-video", "train", "train-inpainter", "train-style", "train-upscaler", "translate", "upscale",
                    "video", "project", "edit", "directions", "audit")


def _chosen(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is one), if any."""
    for word in argv:
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None  # an unknown command: argparse reports it with the list of choices
    return None


def build_parser(argv: list[str] | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The parser for ``argv``: the chosen sub-command fully built, the others as stubs that carry
    only their help line. ``full=True`` builds every sub-command (tests, documentation)."""
    from ..version import __version__

    parser = argparse.ArgumentParser(prog="ganforge", description="Train GANs and restyle images.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = None if full else _chosen(list(sys.argv[1:] if argv is None else argv))
    modules = sorted({m for m, _ in COMMANDS.values()}) if full else ([COMMANDS[chosen][0]] if chosen else [])
    built: set[str] = set()
    for name in modules:
        before = set(sub.choices)
        importlib.import_module(f"{__name__}.{name}").register(sub)
        built |= set(sub.choices) - before
    for command, (_, help_text) in sorted(COMMANDS.items()):
        if command not in built:
            sub.add_parser(command, help=help_text, add_help=False)
    # argparse lists sub-commands in the order they were added: show them sorted
    sub._choices_actions.sort(key=lambda action: action.dest)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
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
    except Exception as exc:  # a full disk, a read-only or forbidden output path: one line, no traceback
        reason = os_error_reason(exc)
        if args.debug or reason is None:
            raise
        where = getattr(exc, "filename", None)
        detail = f": {where}" if where else "" if isinstance(exc, OSError) else f" ({_first_line(exc)})"
        print(f"ganforge: error: {reason}{detail}", file=sys.stderr)
        return 2
    return int(result or 0)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

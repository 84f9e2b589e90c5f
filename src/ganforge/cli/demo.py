"""``ganforge demo``: the one-command tour (offline, a few minutes on a laptop CPU)."""

from __future__ import annotations

import argparse

from ._common import add_network_options, add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train a small conditional GAN offline and write an HTML report")
    p.add_argument("--out", default="ganforge-demo", help="output folder (index.html inside)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (batch 64)")
    p.add_argument("--data", default="auto", help="auto (MNIST if available, else scikit-learn digits), mnist, digits")
    add_network_options(p)
    add_quiet(p)
    p.add_argument("--no-style", dest="style", action="store_false", help="skip the style-transfer section")
    p.add_argument("--no-translate", dest="translate", action="store_false",
                   help="skip the image-to-image (pix2pix) section")
    p.add_argument("--no-restore", dest="restore", action="store_false",
                   help="skip the restoration section (super-resolution and inpainting)")
    p.add_argument("--no-text", dest="text", action="store_false",
                   help="skip the text-to-image section (prompts → images on captioned digits)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..report.demo import run_demo

    index = run_demo(args.out, steps=args.steps, data=args.data, style=args.style, translate=args.translate,
                     restore=args.restore, text=args.text, precision=args.precision, device=args.device,
                     progress=not args.quiet)
    print(f"open {index}")
    return 0

"""The demo page's "Prompts → images" section (issue 20): captioned coloured digits built offline
from the demo's own dataset (MNIST or scikit-learn's digits), a text-to-image run trained on them
with ``--text``'s defaults, and a grid of fixed prompts (one row each, the same 8 latents in every
row), one of them a colour–digit pair that never occurs in the training images or captions.

It sits with the report (layer 6), not in ``ganforge.text`` (layer 2): it trains through the
public API (``GanConfig(text=True)``, ``train_gan``, ``load_generator``), which lies above the
text building blocks."""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path

HOLDOUT = (("red", 7),)  # (ink, digit) pairs removed from the training images and captions
HELD_OUT_PROMPT = "a red seven on a blue background"
PROMPTS = (
    HELD_OUT_PROMPT,
    "a green two on a black background",
    "the digit four in yellow on a blue background",
    "a white 9 on a black background",
    "a blue zero on a white background",
    "a red 3 on a white background",
)
LATENTS = 8  # images per prompt: the grid's columns
SEED = 1
SHOWN_SCALE = 2  # the page shows the 32² grid twice as large (pixelated)


def budget(steps: int) -> dict[str, int]:
    """The section's training budget for the demo's ``steps`` (2000 by default): half of them
    as GAN steps on 2000 images, a sixth for the builtin encoder (at most its default steps), at
    least 10 steps and 500 images, so the section adds a few minutes to the demo and a tiny
    ``--steps`` bounds the whole page's time. (Digit shapes need more: docs/text.md.)"""
    import inspect

    from ..text.builtin import train_builtin_encoder

    full = inspect.signature(train_builtin_encoder).parameters["steps"].default
    return {"steps": max(10, steps // 2), "encoder_steps": min(full, max(10, steps // 6)),
            "n_images": min(2000, max(500, 2 * steps))}


def shape_source(dataset: str) -> str:
    """The captioned-digits builder's ``source`` for the demo's dataset: MNIST's shapes when the
    demo runs on MNIST, scikit-learn's digits when it fell back to them, else whatever is there."""
    return dataset if dataset in ("mnist", "digits") else "auto"


def demo_section(out: Path, dataset: str, *, steps: int = 1000, precision: str = "auto", device: str = "auto",
                 progress: bool = True, n_images: int = 3000, encoder_steps: int = 0, seed: int = 0,
                 prompts: tuple[str, ...] = PROMPTS) -> str:
    """Build captioned digits into ``out/text-data``, train a text run into ``out/text-run`` for
    ``steps`` steps (32², every other option at ``--text``'s default; ``encoder_steps`` 0: the
    builtin encoder's own default), draw ``prompts`` × 8 latents into ``out/text_prompts.png``
    (provenance and watermark) and return the page's HTML fragment (its own heading). The numbers
    go to ``out/text_prompts.json``."""
    from ..api import train_gan
    from ..config import GanConfig
    from ..provenance import Provenance
    from ..sample import load_generator, save_grid
    from ..text.digits import build_captioned_digits, check_holdout

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder, run = out / "text-data", out / "text-run"
    for path in (folder, run):
        if path.exists():
            shutil.rmtree(path)  # the demo always starts fresh
    built = build_captioned_digits(folder, n=n_images, resolution=32, seed=seed, holdout=HOLDOUT,
                                   source=shape_source(dataset), progress=False)
    cfg = GanConfig(data=str(folder), resolution=32, text=True, steps=steps, text_encoder_steps=encoder_steps,
                    precision=precision, sample_every=0, ckpt_every=steps, log_every=10, progress=progress,
                    tensorboard=False, seed=seed)
    t0 = time.perf_counter()
    summary = train_gan(cfg, out=run, resume="never", device=device)
    seconds = time.perf_counter() - t0

    gen = load_generator(run)
    images = gen.sample(LATENTS, prompts=list(prompts), seed=SEED)
    held = {f"{ink}:{digit}" for ink, digit in check_holdout(HOLDOUT)}
    unseen = [p for p in prompts if p == HELD_OUT_PROMPT]
    save_grid(images, out / "text_prompts.png", nrow=LATENTS,
              provenance=Provenance("sample", run.name, None, {"prompts": list(prompts), "n": LATENTS, "seed": SEED,
                                                              "demo": True}, watermark=True))
    numbers = {"prompts": list(prompts), "held_out_prompts": unseen, "holdout": sorted(held), "latents": LATENTS,
               "seed": SEED, "steps": summary["steps"], "seconds": round(seconds, 1),
               "gan_seconds": round(summary["seconds"], 1), "precision": summary["precision"],
               "images": built["images"], "shapes": built["source"], "arch": gen.arch}
    (out / "text_prompts.json").write_text(json.dumps(numbers, indent=2) + "\n")
    return fragment(numbers)


def fragment(numbers: dict) -> str:
    """The section's HTML: the grid with its prompts beside it (one line per row), the training
    time and what the held-out prompt is."""
    row_px = (32 + 2) * SHOWN_SCALE  # make_grid pads every tile with 2 px
    width = (LATENTS * (32 + 2) + 2) * SHOWN_SCALE
    items = "".join(
        f"<li style='height:{row_px}px;line-height:{row_px}px'>{html.escape(p)}"
        + (" <strong>(never seen in training)</strong>" if p in numbers["held_out_prompts"] else "") + "</li>"
        for p in numbers["prompts"])
    shapes = "MNIST" if numbers["shapes"] == "mnist" else "scikit-learn's 8×8 digits, upscaled"
    ink, _, digit = (numbers["holdout"] or ["red:7"])[0].partition(":")
    note = (f"<p>Held out: no training image or caption shows a {html.escape(ink)} {html.escape(digit)} (on any "
            f"background), so the row marked <em>never seen in training</em> asks for a combination the model only "
            f"knows in parts: {html.escape(ink)} ink on other digits, the digit {html.escape(digit)} in other inks.</p>")
    return (f"<h2>Prompts → images</h2>"
            f"<p>A text-to-image run (<code>ganforge train --data text-data --text --resolution 32 "
            f"--steps {numbers['steps']}</code>, every other option at its default: a text-conditional "
            f"{html.escape(numbers['arch'])} with the builtin text encoder trained first on the captions) on "
            f"{numbers['images']} captioned coloured digits ({html.escape(shapes)}; <code>ganforge data digits</code>). "
            f"Training took {numbers['seconds']:.0f} s in all (data preparation and the text encoder, then {numbers['steps']} GAN steps in "
            f"{numbers['gan_seconds']:.0f} s, {html.escape(numbers['precision'])}). Each row is one prompt, each "
            f"column one of {numbers['latents']} latents shared by every row.</p>"
            f"<div class='row'><img src='text_prompts.png' width='{width}' alt='prompts to images'>"
            f"<ol style='margin:{2 * SHOWN_SCALE}px 0;padding-left:1.5em'>{items}</ol></div>{note}"
            f"<p>Run directory: <code>text-run/</code>; draw more with <code>ganforge sample text-run --prompt "
            f"\"a yellow 3 on a blue background\" --n 8 --out grid.png</code>. A short run draws colours and "
            f"backgrounds first and digit shapes later; docs/text.md has the full-length recipe.</p>")

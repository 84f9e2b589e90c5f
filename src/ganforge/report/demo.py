"""``ganforge demo``: train a conditional GAN on handwritten digits offline in a few minutes and
write a self-contained HTML page: samples per class, a latent walk, loss curves, timings, a
style-transfer example, an image-to-image translation example, restoration examples
(super-resolution and inpainting) and text-to-image (prompts → images)."""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from ..errors import DataError, GanforgeError


def _mnist_files_present() -> bool:
    from .. import paths

    roots = [r for r in (paths.data_dir(), paths.home() / "datasets") if r is not None]
    return any((r / "MNIST" / "raw").is_dir() and any((r / "MNIST" / "raw").glob("*.gz")) for r in roots)


def pick_dataset(requested: str = "auto", *, progress: bool = True) -> tuple[str, str]:
    """MNIST when it is available (GANFORGE_DATA_DIR, the cache, or a download); otherwise the
    digits that ship inside scikit-learn. Returns (name, one plain line saying which and why)."""
    import os

    from ..data import load_dataset

    if requested != "auto":
        return requested, f"dataset: {requested} (as requested)"
    had_files = _mnist_files_present()
    try:
        load_dataset("mnist", resolution=32, max_images=1, progress=progress)
    except DataError:
        fallback = "using scikit-learn's 8×8 digits (1797 images, upscaled to 32×32)"
        hint = "set GANFORGE_DATA_DIR to a folder with MNIST/raw/*.gz to use MNIST"
        if had_files:
            why = "MNIST files were found but are incomplete or fail their sha256 check"
        elif os.environ.get("GANFORGE_OFFLINE") == "1":
            why = "MNIST not found locally and GANFORGE_OFFLINE=1"
        else:
            why = "MNIST not found locally and could not be downloaded (offline or unreachable)"
        return "digits", f"dataset: {why}: {fallback}; {hint}"
    if had_files:
        return "mnist", "dataset: MNIST (found locally)"
    return "mnist", "dataset: MNIST (downloaded into the cache)"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>\n"


def _timing_table(timings: dict[str, float]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in timings.items())
    return f"<table>{rows}</table>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ganforge demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td {{ padding: 2px 12px; border-bottom: 1px solid #eee; }}
code {{ background: #f4f4f4; padding: 1px 4px; }} .row {{ display: flex; gap: 16px; flex-wrap: wrap; }}
figure {{ margin: 0; }} figcaption {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>ganforge demo</h1>
<p>{summary}</p>
{sections}
<footer><p>Made by <code>{command}</code> with ganforge {version}.</p></footer>
</body></html>
"""


def run_demo(out: str | Path = "ganforge-demo", *, steps: int = 2000, data: str = "auto", style: bool = True,
             translate: bool = True, restore: bool = True, text: bool = True, precision: str = "auto",
             device: str = "auto", progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Train, sample, interpolate and (optionally) stylise, translate, restore and draw from
    prompts; returns the path of ``index.html``. The extra sections' training steps scale with
    ``steps``, so a small ``steps`` bounds the whole demo's time."""
    from ..version import __version__
    from ..api import train_gan
    from ..config import GanConfig
    from ..sample import interpolation_frames, load_generator, save_grid, write_video

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    dataset, reason = pick_dataset(data, progress=progress)
    log(reason)
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo always starts fresh
    cfg = GanConfig(data=dataset, resolution=32, conditional=True, width=32, batch_size=64, steps=steps,
                    precision=precision, sample_every=max(steps // 5, 1), ckpt_every=steps, log_every=10,
                    progress=progress)
    summary = train_gan(cfg, out=run_dir, resume="never", device=device)
    timings["data loading"] = summary["data_seconds"]
    timings[f"training ({steps} steps, {summary['images_per_s']:.0f} img/s, {summary['precision']})"] = summary["seconds"]

    t = time.perf_counter()
    gen = load_generator(run_dir)
    import torch

    per_class = 10
    labels = torch.arange(gen.num_classes).repeat_interleave(per_class)
    from ..provenance import Provenance

    prov = Provenance("demo", run_dir.name, None, {"seed": 1}, watermark=True)
    save_grid(gen.sample(len(labels), labels=labels, seed=1), out / "samples_per_class.png", nrow=per_class,
              provenance=prov)
    frames = interpolation_frames(gen, [11, 12, 13, 14], frames_per_seed=12,
                                  label=3 if gen.num_classes > 3 else None)
    write_video(frames, out / "interpolation.gif", fps=12, scale=4, provenance=prov)
    shutil.copyfile(run_dir / "loss_curves.png", out / "loss_curves.png")
    snaps = sorted((run_dir / "samples").glob("step-*.png"))
    for snap in snaps:
        shutil.copyfile(snap, out / f"progress-{snap.name}")
    timings["sampling + interpolation"] = time.perf_counter() - t

    names = ", ".join(gen.class_names)
    sections = [
        _section("Samples per class", f"<p>One row per class ({html.escape(names)}), generated by the EMA "
                 f"generator after {gen.step} steps.</p><img src='samples_per_class.png' width='520'>"),
        _section("Latent interpolation", "<p>A spherical walk through four random latents, class 3.</p>"
                 "<img src='interpolation.gif' width='160'>"),
        _section("Training progress", "<div class='row'>" + "".join(
            f"<figure><img src='progress-{s.name}' width='150'><figcaption>{s.stem}</figcaption></figure>"
            for s in snaps) + "</div>"),
        _section("Loss curves", "<img src='loss_curves.png'>"),
    ]
    if style:
        t = time.perf_counter()
        sections.append(f"<section>{_style_fragment(out, log, precision=precision, device=device)}</section>\n")  # the fragment has its own heading
        timings["style transfer"] = time.perf_counter() - t
    if translate:
        t = time.perf_counter()
        sections.append(f"<section>{_translate_fragment(out, dataset, log, steps=max(50, steps // 8), precision=precision, device=device, progress=progress)}</section>\n")
        timings["translation (pix2pix)"] = time.perf_counter() - t
    if restore:
        t = time.perf_counter()
        sections.append(f"<section>{_restore_fragment(out, dataset, log, sr_steps=max(50, steps // 2), inpaint_steps=max(20, steps // 8), precision=precision, device=device, progress=progress)}</section>\n")
        timings["restoration (super-resolution + inpainting)"] = time.perf_counter() - t
    if text:
        t = time.perf_counter()
        sections.append(f"<section>{_text_fragment(out, dataset, log, steps, precision=precision, device=device, progress=progress)}</section>\n")
        timings["text to image (prompts → images)"] = time.perf_counter() - t
    sections.append(_section("Timings", _timing_table(timings)))
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    page = PAGE.format(summary=html.escape(f"{reason}. Conditional DCGAN at 32x32; run directory: run/"),
                       sections="".join(sections), command="ganforge demo", version=__version__)
    index = out / "index.html"
    index.write_text(page)
    return index


def _style_fragment(out: Path, log: Callable[[str], None], **options: str) -> str:
    try:
        from ..style import demo_section
    except ImportError:
        return "<h2>Style transfer</h2><p>Not available in this installation.</p>"
    try:
        fragment = demo_section(out, **options)
        if "Skipped:" in fragment:
            import re

            log("style transfer skipped: " + html.unescape(re.sub(r"<[^>]+>", "", fragment.split("Skipped: ", 1)[1])))
        return fragment
    except GanforgeError as exc:
        log(f"style transfer skipped: {exc}")
        return f"<h2>Style transfer</h2><p>Skipped: {html.escape(str(exc))}</p>"


def _translate_fragment(out: Path, dataset: str, log: Callable[[str], None], **options) -> str:
    from ..translate.demo import demo_section

    try:
        return demo_section(out, dataset, **options)
    except GanforgeError as exc:
        log(f"translation example skipped: {exc}")
        return f"<h2>Image-to-image translation</h2><p>Skipped: {html.escape(str(exc))}</p>"


def _restore_fragment(out: Path, dataset: str, log: Callable[[str], None], **options) -> str:
    from ..restore.demo import demo_section

    try:
        return demo_section(out, dataset, log=log, **options)
    except GanforgeError as exc:
        log(f"restoration examples skipped: {exc}")
        return f"<h2>Restoration</h2><p>Skipped: {html.escape(str(exc))}</p>"


def _text_fragment(out: Path, dataset: str, log: Callable[[str], None], steps: int, **options) -> str:
    from .textdemo import budget, demo_section

    try:
        return demo_section(out, dataset, **budget(steps), **options)
    except GanforgeError as exc:
        log(f"text-to-image example skipped: {exc}")
        return f"<h2>Prompts → images</h2><p>Skipped: {html.escape(str(exc))}</p>"

"""The demo page's translation example: pix2pix learns outline -> digit on the demo's own dataset
(MNIST or scikit-learn's digits) in under a minute on a CPU, shown on held-out outlines."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

HELD_OUT = 8


def outlines(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×1×H×W digits -> uint8 outlines: the ink's border (3×3 dilation minus erosion)."""
    ink = (images.float() > 96).float()
    grown = F.max_pool2d(ink, 3, stride=1, padding=1)
    return ((grown - F.avg_pool2d(ink, 3, stride=1, padding=1).eq(1).float()).clamp(0, 1) * 255).to(torch.uint8)


def _write_pairs(root: Path, a: torch.Tensor, b: torch.Tensor) -> None:
    for side, x in (("A", a), ("B", b)):
        (root / side).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(x[:, 0].numpy()):
            Image.fromarray(img, "L").save(root / side / f"{i:05d}.png")


def demo_section(out: Path, dataset: str, *, steps: int = 400, precision: str = "auto", device: str = "auto",
                 progress: bool = True, max_pairs: int = 1200) -> str:
    """Train the example into ``out/translate-run`` and return the page's HTML fragment."""
    from ..data import load_dataset
    from ..imageio import save_image
    from ..provenance import Provenance
    from .apply import load_translator
    from .config import TranslateConfig
    from .train import train_translator

    data = load_dataset(dataset, resolution=32, channels=1, max_images=max_pairs + HELD_OUT, progress=False)
    digits = data.images
    edges = outlines(digits)
    folder, run = out / "translate-data", out / "translate-run"
    for path in (folder, run):
        if path.exists():
            shutil.rmtree(path)  # the demo always starts fresh
    _write_pairs(folder, edges[:-HELD_OUT], digits[:-HELD_OUT])
    cfg = TranslateConfig(data=str(folder), model="pix2pix", channels_a=1, channels_b=1, load_size=32, crop_size="32",
                          hflip=False, ngf=16, ndf=16, batch_size=8, steps=steps, lr_schedule="constant",
                          precision=precision, sample_every=max(steps, 1), ckpt_every=steps, log_every=10,
                          progress=progress, tensorboard=False)
    summary = train_translator(cfg, out=run, resume="never", device=device)
    translate = load_translator(run, device=device, precision=precision)
    held_a = edges[-HELD_OUT:].float() / 255
    fake = translate.translate_tensor(held_a)
    real = digits[-HELD_OUT:].float() / 255
    grid = torch.cat([held_a, fake, real]).expand(-1, 3, -1, -1)
    from torchvision.utils import make_grid

    save_image(make_grid(grid, nrow=HELD_OUT, padding=2, pad_value=1.0), out / "translation.png",
               provenance=Provenance("translate", "demo", None, {"demo": True}, watermark=True))
    l1 = float((fake - real).abs().mean())
    shutil.rmtree(folder, ignore_errors=True)
    return (f"<h2>Image-to-image translation (pix2pix)</h2><p>pix2pix trained for {summary['steps']} steps "
            f"({summary['seconds']:.0f} s, {html.escape(summary['precision'])}) to turn a digit's outline into the digit. "
            f"Held-out outlines (top), the model's digits (middle), the real ones (bottom); mean L1 {l1:.3f} on [0, 1]. "
            f"Run directory: <code>translate-run/</code>; the same for your own paired folders: "
            f"<code>ganforge translate train --model pix2pix --data DIR</code>.</p>"
            f"<img src='translation.png' width='520'>")

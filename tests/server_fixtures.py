"""Shared set-up for the server tests: random style weights in the official AdaIN layout, a tiny
conditional GAN run trained on scikit-learn's digits, and small test images as bytes."""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image


def smooth_image(seed: int, h: int, w: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    x = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)[0]
    return Image.fromarray(x.mul(255).round().byte().permute(1, 2, 0).numpy(), "RGB")


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_style_weights(folder: Path) -> tuple[Path, Path]:
    """Random encoder + decoder saved as pytorch-AdaIN's vgg_normalised.pth / decoder.pth (He init,
    decoder output scaled around mid-grey, as tests/test_style.py does)."""
    from ganforge.nets.adain_decoder import AdaINDecoder
    from ganforge.nets.vgg import VGGEncoder

    torch.manual_seed(0)
    enc, dec = VGGEncoder("adain", "none"), AdaINDecoder()
    for m in list(enc.modules()) + list(dec.modules()):
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(enc.file_state(), folder / "vgg_normalised.pth")
    with torch.no_grad():
        x = F.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
        y = dec(enc.encode(x))
        dec[-1].weight.mul_(0.12 / y.std())
        dec[-1].bias.add_(0.5 - dec(enc.encode(x)).mean())
    torch.save(dec.state_dict(), folder / "decoder.pth")
    return folder / "vgg_normalised.pth", folder / "decoder.pth"


def make_gan_run(runs_root: Path, name: str = "digits-tiny") -> Path:
    import ganforge

    cfg = ganforge.GanConfig(data="digits", max_images=256, resolution=16, width=8, batch_size=16, log_every=1,
                             sample_every=2, progress=False, tensorboard=False, steps=2, conditional=True)
    ganforge.train_gan(cfg, out=runs_root / name)
    return runs_root / name


def stop_server(proc, log) -> None:
    """Stop a `ganforge serve` subprocess (SIGTERM, then SIGKILL after 10 s) and close its log."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()

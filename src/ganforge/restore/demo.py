"""The demo page's restoration examples. Each one is trained in seconds on a CPU and shown on
data it never saw, next to the classical method it has to beat, with the numbers:

- super-resolution ×4: a small SRResNet (L1 phase only, so no VGG weights are needed) trained
  on the left three quarters of the photo shipped in ``ganforge/assets`` and applied to the right
  quarter; PSNR against bicubic. The same photo on every machine, offline: the MNIST-or-digits
  choice of the rest of the demo would not do here, because scikit-learn's digits are 8×8
  images upscaled by bicubic, so ×4 super-resolution of them only undoes that upscaling.
- inpainting: a small U-Net inpainter trained on the demo's digits (train split) and applied to
  test-split digits with holes drawn from a fixed seed; hole PSNR against OpenCV's
  ``cv2.inpaint`` (Telea).

Everything is drawn from explicit seeds and generators: two runs on one machine write the same
numbers, and no global random state is touched here.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, GanforgeError

SR_SCALE = 4
SR_TRAIN_COLUMNS = 192  # of the 256-px photo: columns [0, 192) train, the rest is the held-out strip
SR_TILE, SR_STRIDE = 64, 16  # training tiles cut on a grid (overlapping), so crops start anywhere
SR_TILE_SCALES = (1.0, 0.75, 0.5)  # the training region also at smaller sizes: more content from one photo
SHAVE = 4  # border pixels left out of SR PSNR, as usual for ×4
PHOTO_CREDIT = ("Photo: &ldquo;china.jpg&rdquo; by danielbuechele, CC BY 2.0 (via scikit-learn), downscaled "
                "to 256×171.")
INPAINT_SHOWN = 8
INPAINT_HELD_OUT = 100  # held-out digits the hole PSNR is measured on (INPAINT_SHOWN of them are shown)
INPAINT_TRAIN = 2000
MASK_SEED = 2024
HOLE_COLOUR = (0.85, 0.2, 0.2)  # how a hole is drawn in the masked input (never the hidden pixels)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """10·log10(1/MSE) of two images in [0, 1] (all pixels and channels)."""
    mse = float((a.double() - b.double()).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def hole_mse(out: torch.Tensor, real: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error over the hole pixels (N×C×H×W in [0, 1], hole N×1×H×W)."""
    err = (out.double() - real.double()).pow(2) * hole
    return err.flatten(1).sum(1) / (hole.flatten(1).sum(1) * out.shape[1]).clamp_min(1)


def hole_psnr(out: torch.Tensor, real: torch.Tensor, hole: torch.Tensor) -> float:
    """10·log10(1/MSE) with the MSE over every hole pixel of every image: one number per method
    that a single perfectly filled hole (exact black background, MSE 0) cannot make infinite."""
    err = ((out.double() - real.double()).pow(2) * hole).sum() / (hole.sum() * out.shape[1]).clamp_min(1)
    return 10 * math.log10(1.0 / max(float(err), 1e-12))


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] rounded to 8-bit levels, as in the PNGs the page shows (and measures)."""
    return x.clamp(0, 1).mul(255).round().div(255)


# --- super-resolution ------------------------------------------------------------------------------

def photo_split(photo: Path, folder: Path) -> torch.Tensor:
    """Write the photo's training tiles into ``folder`` and return the held-out strip (1×3×H×W
    in [0, 1], H a multiple of the scale). The tiles come from the columns left of
    ``SR_TRAIN_COLUMNS`` only, at each of ``SR_TILE_SCALES``; the strip is never seen in training."""
    from PIL import Image

    from ..imageio import open_image

    img = open_image(photo, "RGB")
    if img.width <= SR_TRAIN_COLUMNS or img.height < SR_TILE:
        raise DataError(f"{photo} is {img.width}×{img.height}; the example needs at least "
                        f"{SR_TRAIN_COLUMNS + SR_TILE}×{SR_TILE}")
    folder.mkdir(parents=True, exist_ok=True)
    train = img.crop((0, 0, SR_TRAIN_COLUMNS, img.height))
    count = 0
    for s in SR_TILE_SCALES:
        part = train if s == 1 else train.resize((round(train.width * s), round(train.height * s)), Image.BICUBIC)
        arr = np.asarray(part)
        for y in range(0, arr.shape[0] - SR_TILE + 1, SR_STRIDE):
            for x in range(0, arr.shape[1] - SR_TILE + 1, SR_STRIDE):
                Image.fromarray(arr[y:y + SR_TILE, x:x + SR_TILE]).save(folder / f"{count:04d}.png")
                count += 1
    held = np.asarray(img)[: img.height - img.height % SR_SCALE, SR_TRAIN_COLUMNS:]
    held = held[:, : held.shape[1] - held.shape[1] % SR_SCALE]
    return torch.from_numpy(held.copy()).permute(2, 0, 1)[None].float() / 255


def super_resolution_example(out: Path, *, steps: int = 1000, photo: Path | None = None, precision: str = "auto",
                             device: str = "auto", progress: bool = True) -> tuple[str, dict]:
    """Train the ×4 example into ``out/sr-run``, write its four images, and return (HTML, numbers)."""
    from ..imageio import save_image
    from ..provenance import Provenance
    from ..style.demo import CONTENT
    from .degrade import bicubic_down, quantise
    from .sr import SRConfig, load_upscaler_run, train_upscaler
    from .upscale import upscale_image

    folder, run = out / "sr-data", out / "sr-run"
    for path in (folder, run):
        if path.exists():
            shutil.rmtree(path)  # the demo always starts fresh
    hr = photo_split(Path(photo) if photo is not None else CONTENT, folder)
    cfg = SRConfig(data=str(folder), tile_size=SR_TILE, crop=32, scale=SR_SCALE, arch="srresnet", nf=16, nb=2,
                   batch_size=8, psnr_steps=steps, steps=steps, lr_psnr=2e-3, lr_schedule="cosine",
                   perceptual_weight=0.0, precision=precision, sample_every=max(steps, 1), ckpt_every=steps,
                   log_every=10, progress=progress, tensorboard=False, seed=0)
    summary = train_upscaler(cfg, out=run, resume="never", device=device)
    shutil.rmtree(folder, ignore_errors=True)
    net = load_upscaler_run(run)
    lr = quantise(bicubic_down(hr, SR_SCALE))  # what the network was trained on: antialiased bicubic, 8-bit
    # fp32 inference: the measured images are the network's best, whatever precision trained it
    ours = to_8bit(upscale_image(net, lr, precision="fp32", device=device))
    bicubic = to_8bit(F.interpolate(lr, scale_factor=SR_SCALE, mode="bicubic", align_corners=False))
    nearest = F.interpolate(lr, scale_factor=SR_SCALE, mode="nearest")
    for name, img in (("sr_lowres.png", nearest), ("sr_bicubic.png", bicubic), ("sr_ganforge.png", ours),
                      ("sr_original.png", hr)):
        # metadata, no pixel mark: the page's PSNR is measured on exactly these pixels
        save_image(img[0], out / name, provenance=Provenance("upscale", "demo", None, {"demo": True})
                   if name == "sr_ganforge.png" else None)
    s = SHAVE
    p_bic, p_ours = psnr(bicubic[..., s:-s, s:-s], hr[..., s:-s, s:-s]), psnr(ours[..., s:-s, s:-s], hr[..., s:-s, s:-s])
    gain = round(round(p_ours, 2) - round(p_bic, 2), 2)  # of the printed numbers, so text and verdict agree
    numbers = {"psnr_bicubic": round(p_bic, 2), "psnr_ganforge": round(p_ours, 2), "gain_db": gain,
               "beats_bicubic": gain > 0, "steps": summary["steps"], "seconds": round(summary["seconds"], 1),
               "precision": summary["precision"], "held_out_size": list(hr.shape[-2:]),
               "low_res_size": list(lr.shape[-2:]), "shave": s}
    if gain > 0:
        verdict = f"ganforge beats bicubic by {gain:.2f} dB on this strip."
    elif gain == 0:
        verdict = "ganforge is level with bicubic on this strip, not better."
    else:
        verdict = (f"ganforge does not beat bicubic here ({-gain:.2f} dB below): {summary['steps']} steps on part "
                   f"of one small photo are too little. On more photos and about 3000 steps it gains about "
                   f"0.3 dB over bicubic (docs/benchmarks.md).")
    h, w = hr.shape[-2:]
    figs = "".join(
        f"<figure><img src='{name}' width='{2 * w}' alt='{html.escape(alt)}'><figcaption>{caption}</figcaption></figure>"
        for name, alt, caption in (
            ("sr_lowres.png", "low-res input", f"input {w // SR_SCALE}×{h // SR_SCALE} (nearest)"),
            ("sr_bicubic.png", "bicubic", f"bicubic: {p_bic:.2f} dB"),
            ("sr_ganforge.png", "ganforge", f"ganforge: {p_ours:.2f} dB"),
            ("sr_original.png", "original", "original")))
    fragment = (f"<h3>Super-resolution ×{SR_SCALE}</h3><div class='row'>{figs}</div>"
                f"<p>A small SRResNet (16 features, 2 blocks, L1 loss only) trained for {summary['steps']} steps "
                f"({summary['seconds']:.0f} s, {html.escape(summary['precision'])}) on the left {SR_TRAIN_COLUMNS} "
                f"columns of the photo (at full, 3/4 and 1/2 size), then applied to the right strip it never saw, "
                f"shrunk ×{SR_SCALE} (antialiased bicubic). PSNR against the original (border of {s} px left "
                f"out): bicubic {p_bic:.2f} dB, ganforge {p_ours:.2f} dB. {verdict} {PHOTO_CREDIT} Run directory: "
                f"<code>sr-run/</code>, used by <code>ganforge upscale photo.jpg --model sr-run --out photo_x4.png"
                f"</code>; on your own photos: <code>ganforge train-upscaler --data DIR --arch srresnet --nf 16 --nb 2 "
                f"--psnr-steps 3000 --steps 3000 --perceptual-weight 0 --out my-sr</code>.</p>")
    return fragment, numbers


# --- inpainting ------------------------------------------------------------------------------------

def telea(images: torch.Tensor, holes: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """OpenCV's ``cv2.inpaint`` (Telea) on uint8 N×1×H×W images with N×1×H×W holes (1 = hole)."""
    import cv2

    out = [cv2.inpaint(np.ascontiguousarray(img[0].numpy()), (hole[0].numpy() > 0.5).astype(np.uint8) * 255,
                       radius, cv2.INPAINT_TELEA) for img, hole in zip(images, holes)]
    return torch.from_numpy(np.stack(out))[:, None]


def shown_indices(labels: torch.Tensor, k: int) -> torch.Tensor:
    """The first image of each class in order of appearance, then the next ones, up to ``k``: the
    test split of scikit-learn's digits starts 0, 5, 0, 5, ..., and eight of those say little."""
    first: dict[int, int] = {}
    for i, c in enumerate(labels.tolist()):
        first.setdefault(c, i)
    order = list(first.values()) + [i for i in range(len(labels)) if i not in set(first.values())]
    return torch.tensor(order[:k], dtype=torch.long)


def inpainting_example(out: Path, dataset: str, *, steps: int = 250, precision: str = "auto", device: str = "auto",
                       progress: bool = True, max_train: int = INPAINT_TRAIN,
                       held_out: int = INPAINT_HELD_OUT) -> tuple[str, dict]:
    """Train the inpainting example into ``out/inpaint-run``, write its grid, and return (HTML,
    numbers). ``dataset`` needs train and test splits (mnist, fashion-mnist, digits)."""
    from torchvision.utils import make_grid

    from ..data import load_dataset
    from ..data.builtin import splits
    from ..imageio import save_image
    from ..provenance import Provenance
    from .inpaint import InpaintConfig, load_inpainter, train_inpainter
    from .masks import make_masks

    if not {"train", "test"} <= set(splits(dataset)):
        raise DataError(f"the inpainting example needs a built-in dataset with train and test splits "
                        f"(mnist, fashion-mnist, digits), not {dataset!r}")
    run = out / "inpaint-run"
    if run.exists():
        shutil.rmtree(run)  # the demo always starts fresh
    cfg = InpaintConfig(data=f"{dataset}:train", load_size=32, crop_size=32, channels=1, hflip=False,
                        max_images=max_train, ngf=16, ndf=16, batch_size=16, steps=steps, precision=precision,
                        sample_every=max(steps, 1), ckpt_every=steps, log_every=10, progress=progress,
                        tensorboard=False, seed=0)
    summary = train_inpainter(cfg, out=run, resume="never", device=device)
    test = load_dataset(f"{dataset}:test", resolution=32, channels=1, max_images=held_out, progress=False)
    images, n = test.images, len(test.images)
    holes = make_masks(n, 32, 32, torch.Generator().manual_seed(MASK_SEED), kind=cfg.mask_kind,
                       min_area=cfg.min_hole, max_area=cfg.max_hole)
    real = images.float() / 255
    model = load_inpainter(run, device=device, precision="fp32")
    ours = torch.where(holes.bool(), to_8bit(model.fill(real, holes)), real)  # known pixels kept exactly
    cv = telea(images, holes).float() / 255
    p_cv, p_ours = hole_psnr(cv, real, holes), hole_psnr(ours, real, holes)
    mse_cv, mse_ours = hole_mse(cv, real, holes), hole_mse(ours, real, holes)
    better = int((mse_ours < mse_cv).sum())
    shown = shown_indices(test.labels, INPAINT_SHOWN)
    colour = torch.tensor(HOLE_COLOUR).view(1, 3, 1, 1)
    masked = torch.where(holes[shown].bool(), colour, real[shown].expand(-1, 3, -1, -1))
    rows = [masked] + [x[shown].expand(-1, 3, -1, -1) for x in (cv, ours, real)]
    save_image(make_grid(torch.cat(rows), nrow=len(shown), padding=2, pad_value=1.0), out / "inpaint.png",
               provenance=Provenance("inpaint", "demo", None, {"demo": True}, watermark=False))
    numbers = {"hole_psnr_telea": round(p_cv, 2), "hole_psnr_ganforge": round(p_ours, 2),
               "gain_db": round(round(p_ours, 2) - round(p_cv, 2), 2), "beats_telea": round(p_ours, 2) > round(p_cv, 2),
               "images_better_than_telea": better, "held_out_images": n, "hole_fraction": round(float(holes.mean()), 3),
               "steps": summary["steps"], "seconds": round(summary["seconds"], 1), "precision": summary["precision"],
               "dataset": dataset}
    gain = numbers["gain_db"]
    if gain > 0:
        verdict = f"ganforge beats Telea by {gain:.2f} dB, and has the smaller hole error on {better} of {n} digits."
    else:
        level = "is level with Telea" if gain == 0 else f"does not beat Telea here ({-gain:.2f} dB below)"
        verdict = f"ganforge {level}; it has the smaller hole error on {better} of {n} digits."
    fragment = (f"<h3>Inpainting</h3><p>A small inpainter (U-Net, 16 features) trained for {summary['steps']} steps "
                f"({summary['seconds']:.0f} s, {html.escape(summary['precision'])}) on {html.escape(dataset)} "
                f"(train split), with random rectangles and brush strokes as holes. Held-out test digits (one per class), rows: "
                f"masked input (hole in red), OpenCV <code>cv2.inpaint</code> (Telea, radius 3), ganforge, "
                f"original.</p><img src='inpaint.png' width='520' alt='inpainting: masked, Telea, ganforge, original'>"
                f"<p>Hole PSNR (the error over every hole pixel of the first {n} test digits, holes "
                f"{100 * numbers['hole_fraction']:.0f} % of the image on average): Telea {p_cv:.2f} dB, "
                f"ganforge {p_ours:.2f} dB. {verdict} Known pixels are kept exactly. Run directory: "
                f"<code>inpaint-run/</code>; fill your own image: <code>ganforge inpaint image.png --mask hole.png "
                f"--model inpaint-run --out filled.png</code>.</p>")
    return fragment, numbers


# --- the section -----------------------------------------------------------------------------------

def demo_section(out: Path, dataset: str, *, sr_steps: int = 1000, inpaint_steps: int = 250,
                 precision: str = "auto", device: str = "auto", progress: bool = True,
                 log: Callable[[str], None] | None = None, **inpaint_options: int) -> str:
    """Run both examples and return the page's HTML fragment (its own heading); their numbers go
    to ``out/restoration.json``. One example that cannot run (e.g. a dataset without a test split)
    is a one-line note on the page, and the other still runs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts, numbers = [], {}
    examples = (("super_resolution", "Super-resolution ×4",
                 lambda: super_resolution_example(out, steps=sr_steps, precision=precision, device=device,
                                                  progress=progress)),
                ("inpainting", "Inpainting",
                 lambda: inpainting_example(out, dataset, steps=inpaint_steps, precision=precision, device=device,
                                            progress=progress, **inpaint_options)))
    for key, title, run in examples:
        try:
            fragment, numbers[key] = run()
        except GanforgeError as exc:
            if log is not None:
                log(f"{title.lower()} example skipped: {exc}")
            fragment = f"<h3>{html.escape(title)}</h3><p>Skipped: {html.escape(str(exc))}</p>"
        parts.append(fragment)
    (out / "restoration.json").write_text(json.dumps(numbers, indent=2) + "\n")
    return "<h2>Restoration</h2>" + "".join(parts)

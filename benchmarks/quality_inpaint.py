"""Inpainting quality: a ganforge inpainter trained on the CPU vs OpenCV's ``cv2.inpaint`` (Telea and
Navier-Stokes) and a mean-colour fill, on held-out images with the SAME hole masks.

Metrics, inside the hole only (the known pixels are identical for every method):
- hole PSNR: 10·log10(1 / MSE) over the hole pixels (all channels, values in [0, 1]) per image,
  averaged over images;
- hole SSIM: the SSIM map (Wang et al. 2004: luma, 11×11 Gaussian σ=1.5, reflect-padded so the map
  has the image's size) averaged over the hole pixels, averaged over images.
Every method's output is an 8-bit image (ganforge through ``inpaint_image``, known pixels exact).

Data:
- ``fashion``: Fashion-MNIST train (32×32, grey) for training; the first ``--test`` images of the
  test split held out.
- ``photos``: the shared photos (GANFORGE_TEST_ASSETS or ../shared/assets/images/content) at 256×256
  (short side resized, centre crop); random 64×64 training crops (of 128 px tiles on a 64 px grid) of
  chicago, cornell, golden_gate, sailboat (``--scales 256,512``: also from the photos at 512 px); held out: the 64×64 crops of tubingen on a 32 px grid (49 crops).

Masks: ``mix`` (rectangles or brush strokes), hole area 10-40 %, drawn from a fixed generator.

  GANFORGE_DATA_DIR=/work/shared/assets/datasets nice -n 10 python benchmarks/quality_inpaint.py \
      --dataset fashion --steps 1500 --out benchmarks/results/inpaint_fashion.json
  nice -n 10 python benchmarks/quality_inpaint.py --dataset photos --steps 1500 \
      --out benchmarks/results/inpaint_photos.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
TRAIN_PHOTOS = ("chicago.jpg", "cornell.jpg", "golden_gate.jpg", "sailboat.jpg")
TEST_PHOTO = "tubingen.jpg"


def photos_dir() -> Path:
    root = Path(os.environ.get("GANFORGE_TEST_ASSETS") or REPO.parent / "shared" / "assets")
    return root / "images" / "content"


def gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(c ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()[None, None]


def luma(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x, y = luma(a), luma(b)
    w = gaussian()
    pad = lambda t: F.pad(t, (5, 5, 5, 5), mode="reflect")  # noqa: E731
    mx, my = F.conv2d(pad(x), w), F.conv2d(pad(y), w)
    sxx = F.conv2d(pad(x * x), w) - mx ** 2
    syy = F.conv2d(pad(y * y), w) - my ** 2
    sxy = F.conv2d(pad(x * y), w) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))


def hole_scores(out: np.ndarray, real: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) inside the hole of one H×W×C uint8 pair."""
    o = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255
    r = torch.from_numpy(real).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(hole)[None, None].float()
    mse = float(((o - r) ** 2 * m).sum() / (m.sum() * o.shape[1]))
    psnr = 10 * math.log10(1.0 / max(mse, 1e-10))
    s = float((ssim_map(o, r) * m).sum() / m.sum())
    return psnr, s


def cv2_fill(img: np.ndarray, hole: np.ndarray, flag: int, radius: int) -> np.ndarray:
    import cv2

    src = img[..., 0] if img.shape[-1] == 1 else img[..., ::-1].copy()  # OpenCV: BGR
    out = cv2.inpaint(np.ascontiguousarray(src), hole.astype(np.uint8) * 255, radius, flag)
    return out[..., None] if img.shape[-1] == 1 else out[..., ::-1].copy()


def mean_fill(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[hole] = img[~hole].mean(0).round().astype(np.uint8)
    return out


def pyramid_only(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    from ganforge.restore.inpaint import pyramid_fill

    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(hole)[None, None].float()
    f = (pyramid_fill(x, m)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return np.where(hole[..., None], f, img)


def load_data(args) -> tuple[str, np.ndarray, dict]:
    """(training source for --data, held-out uint8 N×H×W×C, config overrides)."""
    from ganforge.data import load_dataset

    if args.dataset == "fashion":
        test = load_dataset("fashion-mnist:test", resolution=32, channels=1, max_images=args.test, progress=False)
        held = test.images.permute(0, 2, 3, 1).numpy()
        over = dict(data="fashion-mnist:train", load_size=32, crop_size=32, channels=1, max_images=args.max_images)
        return over["data"], held, over
    src = photos_dir()
    tmp = Path(tempfile.mkdtemp(prefix="inpaint_photos_"))
    for name in TRAIN_PHOTOS:
        (tmp / name).symlink_to(src / name)
    (tmp / "held").mkdir()
    (tmp / "held" / TEST_PHOTO).symlink_to(src / TEST_PHOTO)
    full = load_dataset(tmp / "held", resolution=256, channels=3, progress=False).images[0]
    crops = [full[:, y:y + 64, x:x + 64] for y in range(0, 193, 32) for x in range(0, 193, 32)]
    held = torch.stack(crops).permute(0, 2, 3, 1).numpy()
    (tmp / "train").mkdir()
    from PIL import Image

    for name in TRAIN_PHOTOS:  # 128 px tiles on a 64 px grid of each 256 px photo (9 per photo): random 64 crops
        (tmp / "src" / name).parent.mkdir(exist_ok=True)
        (tmp / "src" / name).symlink_to(src / name)
    for scale in args.scales:
        photos = load_dataset(tmp / "src", resolution=scale, channels=3, progress=False).images
        for i, photo in enumerate(photos):
            for y in range(0, scale - 127, 64):
                for x in range(0, scale - 127, 64):
                    tile = photo[:, y:y + 128, x:x + 128].permute(1, 2, 0).numpy()
                    Image.fromarray(tile).save(tmp / "train" / f"{scale}_{i}_{y}_{x}.png")
    over = dict(data=str(tmp / "train"), load_size=128, crop_size=64, channels=3)
    return over["data"], held, over


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("fashion", "photos"), default="fashion")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--ndf", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--scales", type=lambda t: [int(v) for v in t.split(",")], default=[256],
                    help="photos: training photos resized to these sizes (powers of two) before tiling")
    ap.add_argument("--lambda-gan", type=float, default=1.0)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--test", type=int, default=500, help="fashion: held-out test images")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--run", default=None, help="run directory (default: a temporary one); resumed if it exists")
    ap.add_argument("--out", default=None, help="results JSON")
    ap.add_argument("--radius", type=int, default=3, help="cv2.inpaint radius")
    args = ap.parse_args()

    import cv2

    from ganforge.restore.inpaint import InpaintConfig, inpaint_image, load_inpainter, train_inpainter
    from ganforge.restore.masks import make_masks

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data, held, over = load_data(args)
    run = Path(args.run or tempfile.mkdtemp(prefix=f"inpaint_{args.dataset}_run_"))
    cfg = InpaintConfig(**over, ngf=args.ngf, ndf=args.ndf, batch_size=args.batch_size, lr_g=args.lr, lr_d=args.lr,
                        steps=args.steps, precision=args.precision, lambda_gan=args.lambda_gan, mask_kind="mix", min_hole=0.1, max_hole=0.4,
                        log_every=25, sample_every=max(args.steps // 4, 1), ckpt_every=100, progress=False,
                        tensorboard=False)
    t0 = time.perf_counter()
    summary = train_inpainter(cfg, out=run, device="cpu")
    train_s = time.perf_counter() - t0
    model = load_inpainter(run, device="cpu", precision="fp32")

    n, h, w, c = held.shape
    holes = make_masks(n, h, w, torch.Generator().manual_seed(2024), kind="mix", min_area=0.1,
                       max_area=0.4)[:, 0].bool().numpy()
    methods = {
        "ganforge": lambda img, hole: np.asarray(inpaint_image(model, _pil(img), _pil_mask(hole))).reshape(img.shape),
        "cv2 Telea": lambda img, hole: cv2_fill(img, hole, cv2.INPAINT_TELEA, args.radius),
        "cv2 Navier-Stokes": lambda img, hole: cv2_fill(img, hole, cv2.INPAINT_NS, args.radius),
        "pyramid fill (the network's starting point)": pyramid_only,
        "mean colour": mean_fill,
    }
    scores = {k: {"psnr": [], "ssim": []} for k in methods}
    seconds = {k: 0.0 for k in methods}
    for img, hole in zip(held, holes):
        for name, fn in methods.items():
            t = time.perf_counter()
            out = fn(img, hole)
            seconds[name] += time.perf_counter() - t
            assert (out[~hole] == img[~hole]).all(), f"{name} changed known pixels"
            p, s = hole_scores(out, img, hole)
            scores[name]["psnr"].append(p)
            scores[name]["ssim"].append(s)
    table = {k: {"hole_psnr": float(np.mean(v["psnr"])), "hole_ssim": float(np.mean(v["ssim"])),
                 "hole_psnr_median": float(np.median(v["psnr"])),
                 "wins_psnr_vs_best_cv2": None, "ms_per_image": 1000 * seconds[k] / n} for k, v in scores.items()}
    best_cv2 = np.maximum(scores["cv2 Telea"]["psnr"], scores["cv2 Navier-Stokes"]["psnr"])
    for k in table:
        table[k]["wins_psnr_vs_best_cv2"] = float(np.mean(np.asarray(scores[k]["psnr"]) > best_cv2))
    result = {"dataset": args.dataset, "held_out_images": n, "image_size": [h, w], "channels": c,
              "hole_fraction_mean": float(holes.mean()), "masks": "mix (rect or brush), 10-40 % of the image, seed 2024",
              "config": {k: getattr(cfg, k) for k in ("data", "load_size", "crop_size", "channels", "ngf", "ndf",
                                                      "batch_size", "steps", "lr_g", "lambda_hole", "lambda_valid",
                                                      "lambda_gan", "norm", "precision")},
              "train_seconds": round(train_s, 1), "train_precision": summary.get("precision"),
              "cv2_version": cv2.__version__, "cv2_radius": args.radius, "torch": torch.__version__,
              "machine": platform.machine(), "threads": torch.get_num_threads(), "run": str(run),
              "command": " ".join([Path(sys.executable).name] + sys.argv), "results": table}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


def _pil(img: np.ndarray):
    from PIL import Image

    return Image.fromarray(img[..., 0], "L") if img.shape[-1] == 1 else Image.fromarray(img, "RGB")


def _pil_mask(hole: np.ndarray):
    from PIL import Image

    return Image.fromarray(hole.astype(np.uint8) * 255, "L")


if __name__ == "__main__":
    sys.exit(main())

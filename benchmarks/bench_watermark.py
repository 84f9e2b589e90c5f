"""Watermark robustness table: bit accuracy and detection rate of ganforge's watermark per image size
and transform, PSNR of the marked images, false detections on unmarked images; and the same for the
`invisible-watermark` package's DWT-DCT (when installed: pip install invisible-watermark), side by side.

Hosts: square crops of the photos in ASSETS/images (content and style) and of the packaged photo,
and MNIST digits (ASSETS/datasets), resized to each size. The mark does not depend on what made
the image, so real images stand in for generated ones here.

    python benchmarks/bench_watermark.py --assets ../shared/assets --per-size 50 --out wm.json
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ganforge.watermark import detect, embed

TRANSFORMS = ("clean", "jpeg50", "resize0.5", "crop10", "webp")


def transform(a: np.ndarray, name: str) -> np.ndarray:
    if name == "clean":
        return a
    if name in ("jpeg50", "webp"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG" if name == "jpeg50" else "WEBP", **({"quality": 50} if name == "jpeg50" else {}))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if name == "resize0.5":
        im = Image.fromarray(a)
        return np.asarray(im.resize((im.width // 2, im.height // 2), Image.BICUBIC))
    h, w = a.shape[:2]  # crop10: 10 % of each side cut away in all, centred
    dy, dx = round(h * 0.05), round(w * 0.05)
    return a[dy:h - dy, dx:w - dx]


def hosts(assets: Path, size: int, n: int, seed: int) -> list[np.ndarray]:
    import ganforge

    files = sorted(glob.glob(str(assets / "images" / "*" / "*.jpg"))) + [str(Path(ganforge.__file__).parent / "assets" / "content_china.jpg")]
    photos = [Image.open(f).convert("RGB") for f in files]
    rng = np.random.default_rng(seed)
    out = []
    digits = None
    try:
        from ganforge.data import load_dataset

        digits = load_dataset("mnist:test", resolution=28, progress=False)
    except Exception:  # noqa: BLE001 - optional host set
        digits = None
    for i in range(n):
        if digits is not None and i % 4 == 3:
            arr = digits.images[int(rng.integers(0, len(digits.images))), 0].numpy()
            out.append(np.stack([np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))] * 3, -1))
            continue
        src = photos[i % len(photos)]
        side = int(min(src.size) * rng.uniform(0.3, 1.0))
        x, y = rng.integers(0, src.width - side + 1), rng.integers(0, src.height - side + 1)
        out.append(np.asarray(src.crop((x, y, x + side, y + side)).resize((size, size), Image.LANCZOS)))
    return out


def psnr(a, b) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(((a.astype(float) - b.astype(float)) ** 2).mean(), 1e-12)))


def dwtdct():
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        return None
    bits = [int(b) for b in np.random.default_rng(7).integers(0, 2, 32)]

    def mark(a):
        enc = WatermarkEncoder()
        enc.set_watermark("bits", bits)
        return enc.encode(a[..., ::-1].copy(), "dwtDct")[..., ::-1].copy()  # it works in BGR

    def read(a):
        try:
            got = WatermarkDecoder("bits", 32).decode(a[..., ::-1].copy(), "dwtDct")
        except Exception:  # noqa: BLE001 - it refuses small images
            return 0.0
        return float(np.mean(np.array(got, dtype=int) == np.array(bits)))

    return mark, read


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", default="../shared/assets")
    p.add_argument("--sizes", default="32,64,256,1024")
    p.add_argument("--per-size", type=int, default=50)
    p.add_argument("--unmarked", type=int, default=250, help="unmarked images per size for false detections")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    other = dwtdct()
    table = []
    for size in [int(s) for s in args.sizes.split(",")]:
        images = hosts(Path(args.assets), size, args.per_size, seed=size)
        start = time.perf_counter()
        marked = [embed(a) for a in images]
        t_embed = (time.perf_counter() - start) / len(images)
        row = {"size": size, "n": len(images), "psnr_min": min(psnr(a, m) for a, m in zip(images, marked)),
               "psnr_mean": float(np.mean([psnr(a, m) for a, m in zip(images, marked)])), "embed_s": t_embed}
        start = time.perf_counter()
        for name in TRANSFORMS:
            found = [detect(transform(m, name)) for m in marked]
            row[name] = {"bit_accuracy": float(np.mean([d.bit_accuracy for d in found])),
                         "detected": float(np.mean([d.detected for d in found]))}
        row["detect_s"] = (time.perf_counter() - start) / (len(images) * len(TRANSFORMS))
        unmarked = hosts(Path(args.assets), size, args.unmarked, seed=size + 1)
        row["false_detections"] = int(sum(detect(a).detected for a in unmarked))
        row["unmarked_n"] = len(unmarked)
        if other is not None:
            mark, read = other
            try:
                om = [mark(a) for a in images]
                row["dwtdct"] = {"psnr_mean": float(np.mean([psnr(a, m) for a, m in zip(images, om)])),
                                 **{name: float(np.mean([read(transform(m, name)) for m in om])) for name in TRANSFORMS}}
            except Exception as exc:  # noqa: BLE001 - it refuses images under 256 px
                row["dwtdct"] = f"refused: {type(exc).__name__}: {str(exc)[:80]}"
        table.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()

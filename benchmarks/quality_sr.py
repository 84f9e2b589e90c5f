"""SR ×4 quality of ``train-upscaler`` runs against bicubic, and the PSNR phase against the GAN phase.

Two data sets, each trained by one ``train_upscaler`` run (L1 phase to ``--psnr-steps``, then the
GAN phase to ``--psnr-steps + --gan-steps``; the PSNR model is the checkpoint at the boundary):

- ``photos``: the shared content photos (/work/shared/assets/images/content). Each photo is split
  by columns: the left 80 % is cut into 64×64 training tiles, the right 20 % into held-out 64×64
  crops (never seen in training).
- ``fashion``: Fashion-MNIST (GANFORGE_DATA_DIR), 28×28 -> LR 7×7; training on the first
  ``--fashion-train`` train images, held out: the first 500 test images.

LR inputs: antialiased bicubic ×1/4, quantised to 8 bits (the training degradation ``bicubic``).
Measures on the held-out HR crops (border of 4 px shaved, as usual for ×4):

- PSNR (dB) on RGB and on Y (BT.601 luma), SSIM (11×11 Gaussian, on luma);
- ``vgg``: perceptual distance, mean L1 between VGG19 (vgg19-caffe, Caffe scale 0..255) relu2_2
  and relu3_4 features of the SR and HR images, on the first ``--vgg-max`` held-out crops (lower =
  closer in feature space; the GAN phase's perceptual loss uses the same network and layers, so
  this measure favours that phase by construction);
- ``hf_grad`` / ``hf_lap``: high-frequency energy ratios, sum of squared finite differences
  (gradient) / of the squared 4-neighbour Laplacian of SR divided by that of HR (1 = as much fine
  detail as the ground truth; blurry results are below 1; independent of any network). The
  Laplacian weights the finest scale most, where photos hold sensor noise and JPEG artefacts, so
  its ratios are small for every ×4 method.

Usage (CPU, a few minutes per data set on a quiet 2-core machine)::

    GANFORGE_DATA_DIR=/work/shared/assets/datasets GANFORGE_WEIGHTS_DIR=/work/shared/assets/weights \\
      OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/quality_sr.py --out /tmp/sr_bench --which photos
    (and ``--which fashion`` in a second process; the defaults are sized for a shared 2-core CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ganforge.metrics.imagesim import ssim  # noqa: E402
from ganforge.restore.degrade import bicubic_down, quantise  # noqa: E402
from ganforge.restore.sr_train import SRConfig, load_upscaler_run, train_upscaler  # noqa: E402

CONTENT = Path("/work/shared/assets/images/content")
SCALE = 4
SHAVE = 4


def photo_split(out: Path, tile: int = 64, held_fraction: float = 0.2) -> tuple[Path, torch.Tensor]:
    """Training tiles written to ``out/train`` (PNG) and the held-out crops as a float tensor."""
    from PIL import Image

    train_dir = out / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    held = []
    for path in sorted(CONTENT.glob("*.jpg")):
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        cut = int(w * (1 - held_fraction))
        for y in range(0, h - tile + 1, tile):
            for x in range(0, cut - tile + 1, tile):
                Image.fromarray(img[y:y + tile, x:x + tile]).save(train_dir / f"{path.stem}_{y}_{x}.png")
            for x in range(cut, w - tile + 1, tile):
                held.append(img[y:y + tile, x:x + tile])
    hr = torch.from_numpy(np.stack(held)).permute(0, 3, 1, 2).float() / 255
    return train_dir, hr


def fashion_held(n: int = 500) -> torch.Tensor:
    from ganforge.data import load_dataset

    ds = load_dataset("fashion-mnist:test", resolution=28, channels=3, max_images=n, progress=False)
    return ds.images.float() / 255


def _y(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    return (x * w).sum(1, keepdim=True) + 16 / 255


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1 / mse)


def _gradient_energy(x: torch.Tensor) -> torch.Tensor:
    dx, dy = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    return dx.pow(2).flatten(1).sum(1) + dy.pow(2).flatten(1).sum(1)


def _laplacian_energy(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return F.conv2d(x, k, groups=3).pow(2).flatten(1).sum(1)


class Measures:
    def __init__(self, vgg, vgg_max: int) -> None:
        self.vgg, self.vgg_max = vgg, vgg_max

    @torch.no_grad()
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        s = SHAVE
        sr, hr = sr.clamp(0, 1)[..., s:-s, s:-s], hr[..., s:-s, s:-s]
        out = {"psnr_rgb": float(_psnr(sr, hr).mean()), "psnr_y": float(_psnr(_y(sr), _y(hr)).mean()),
               "ssim": float(ssim(sr, hr).mean()),
               "hf_grad": float((_gradient_energy(sr) / _gradient_energy(hr).clamp_min(1e-8)).mean()),
               "hf_lap": float((_laplacian_energy(sr) / _laplacian_energy(hr).clamp_min(1e-8)).mean())}
        if self.vgg is not None:
            layers = ("relu2_2", "relu3_4")
            dist, m = 0.0, min(len(sr), self.vgg_max)
            for i in range(0, m, 32):
                fs, fh = self.vgg(sr[i:min(i + 32, m)], layers), self.vgg(hr[i:min(i + 32, m)], layers)
                dist += sum(float((fs[n] - fh[n]).abs().mean(dim=(1, 2, 3)).sum()) for n in layers) / len(layers)
            out["vgg"] = dist / m
        return {k: round(v, 4) for k, v in out.items()}


@torch.no_grad()
def super_resolve(net, lr: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(lr[i:i + 64]).float() for i in range(0, len(lr), 64)])


def evaluate(name: str, run: Path, hr: torch.Tensor, psnr_steps: int, measures: Measures) -> dict:
    lr = quantise(bicubic_down(hr, SCALE))
    results = {"bicubic": measures(F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False), hr)}
    psnr_net = load_upscaler_run(run, checkpoint_name=f"step-{psnr_steps:07d}")
    results["psnr_phase"] = measures(super_resolve(psnr_net, lr), hr)
    gan_net = load_upscaler_run(run)
    results["gan_phase"] = measures(super_resolve(gan_net, lr), hr)
    print(name, json.dumps(results, indent=1), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/sr_bench")
    ap.add_argument("--which", default="photos,fashion")
    ap.add_argument("--psnr-steps", type=int, default=600)
    ap.add_argument("--gan-steps", type=int, default=100)
    ap.add_argument("--nf", type=int, default=16)
    ap.add_argument("--nb", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr-psnr", type=float, default=1e-3)
    ap.add_argument("--crop", type=int, default=32, help="photos: HR training crop")
    ap.add_argument("--fashion-train", type=int, default=5000)
    ap.add_argument("--fashion-held", type=int, default=300)
    ap.add_argument("--vgg-max", type=int, default=40, help="held-out crops the VGG distance is computed on")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from ganforge.nets.vgg import load_vgg

    vgg = load_vgg("vgg19-caffe")
    measures = Measures(vgg, args.vgg_max)
    common = dict(arch="srresnet", nf=args.nf, nb=args.nb, scale=SCALE, batch_size=args.batch_size,
                  psnr_steps=args.psnr_steps, lr_psnr=args.lr_psnr, perceptual_layers="relu2_2:1,relu3_4:1", steps=args.psnr_steps + args.gan_steps, perceptual_encoder="vgg19-caffe",
                  ndf=32, precision="auto", progress=False, tensorboard=False, log_every=50,
                  sample_every=10_000, ckpt_every=args.psnr_steps, keep_ckpts=10, seed=0)
    for which in args.which.split(","):
        t0 = time.perf_counter()
        if which == "photos":
            train_dir, hr = photo_split(out / "photos_data")
            cfg = SRConfig(data=str(train_dir), tile_size=64, crop=args.crop, d_layers=2, **common)
        elif which == "fashion":
            hr = fashion_held(args.fashion_held)
            cfg = SRConfig(data="fashion-mnist:train", tile_size=28, crop=28, d_layers=2,
                           max_images=args.fashion_train, **common)
        else:
            raise SystemExit(f"unknown data set {which}")
        run = out / f"run_{which}"
        summary = train_upscaler(cfg, out=run, device="cpu")
        results = evaluate(which, run, hr, args.psnr_steps, measures)
        record = {"data": which, "held_out_crops": len(hr), "hr_size": list(hr.shape[-2:]), "scale": SCALE,
                  "config": {k: v for k, v in cfg.__dict__.items()}, "train_seconds": round(summary["seconds"], 1),
                  "wall_seconds": round(time.perf_counter() - t0, 1), "precision": summary.get("precision"),
                  "torch_threads": torch.get_num_threads(), "measures": results,
                  "measure_notes": {"psnr": "dB, 4 px border shaved", "ssim": "luma, 11x11 Gaussian",
                                    "vgg": "mean L1 of vgg19-caffe relu2_2/relu3_4/relu4_4 features (lower = closer)",
                                    "hf_grad": "squared-gradient energy SR / HR (1 = ground truth's detail)",
                                    "hf_lap": "squared-Laplacian energy SR / HR"},
                  "command": "benchmarks/quality_sr.py " + " ".join(sys.argv[1:])}
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / f"sr_{which}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("GANFORGE_OFFLINE", "1")
    main()

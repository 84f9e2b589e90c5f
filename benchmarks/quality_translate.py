"""Quality of ganforge's image-to-image translation on datasets constructed here (issue 7, "What must
be shown"). Each experiment builds its image folders under --out (benchmarks/translate_data.py; the
held-out split from the datasets' test images), trains with ``ganforge.translate.train_translator``
(precision "auto"), scores the held-out split and writes one JSON with every figure and option.

    GANFORGE_DATA_DIR=/work/shared/assets/datasets OMP_NUM_THREADS=1 \\
        python benchmarks/quality_translate.py pix2pix --out /tmp/tq --threads 1 \\
        --json benchmarks/results/translate_pix2pix.json
    (experiments: pix2pix | seg | spade | cyclegan)

- pix2pix: Fashion-MNIST edges -> item (32²): L1 / PSNR / SSIM of the trained G vs the identity
  baseline (output = input) and vs the same G untrained (its initialisation).
- seg: pix2pix photo -> label map on 64² scenes of MNIST digits on textured backgrounds, labels as
  an 11-colour palette decoded by the nearest colour: per-class IoU and mIoU vs an Otsu threshold
  baseline (Otsu on luma = foreground, every foreground pixel given the training set's most
  frequent digit class), plus the binary foreground IoU of both.
- spade: label map -> image on the same scenes: an MNIST classifier on each digit's box cropped from
  the generated image vs on the real image's crop (and on the label mask itself).
- cyclegan: MNIST <-> inverted MNIST, unpaired (32²): the MNIST classifier keeps the class of the
  translated digit (target >= 90 %), and a domain classifier (a tiny CNN trained here on the
  training A vs B images) calls the translation "target domain" (target >= 80 %).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import translate_data as tdata  # noqa: E402

# per-experiment training options (TranslateConfig fields); --steps / --batch-size override
EXPERIMENTS = {
    "pix2pix": dict(model="pix2pix", load_size=32, crop_size="32", channels_a=1, channels_b=1, ngf=32, ndf=32,
                    unet_downs=5, batch_size=16, steps=600),
    "seg": dict(model="pix2pix", load_size=64, crop_size="64", channels_a=3, channels_b=3, ngf=32, ndf=32,
                unet_downs=6, batch_size=8, steps=600, hflip=False),
    "spade": dict(model="spade", load_size=64, crop_size="64", num_classes=11, channels_b=3, ngf=16, ndf=32,
                  batch_size=4, steps=300, hflip=False),
    "cyclegan": dict(model="cyclegan", load_size=32, crop_size="32", channels_a=1, channels_b=1, ngf=16, ndf=32,
                     batch_size=4, steps=800, lambda_identity=0.0),
}
DATA_SIZES = {"pix2pix": (4000, 500), "seg": (3000, 300), "spade": (3000, 300), "cyclegan": (3000, 500)}


# --- small helpers -------------------------------------------------------------------------------

from bench_train_speed import cpu_flags  # noqa: E402  (one copy; benchmarks/ is on sys.path when run as a script)


def load_folder(folder: Path, mode: str) -> tuple[torch.Tensor, list[str]]:
    """All PNGs of a folder, sorted by name: float N×C×H×W in [0, 1] (mode 'L' / 'RGB') or, for
    mode 'ids', int64 N×H×W."""
    files = sorted(folder.glob("*.png"))
    arrays = [np.asarray(Image.open(f).convert("L" if mode == "ids" else mode)) for f in files]
    x = torch.from_numpy(np.stack(arrays))
    if mode == "ids":
        return x.long(), [f.stem for f in files]
    x = x.float() / 255.0
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous(), [f.stem for f in files]


def translate(tr, x: torch.Tensor, per_image: bool) -> torch.Tensor:
    """Translate a batch; ``per_image`` one image per call (a BatchNorm generator normalises with the
    statistics of what it is given, as upstream pix2pix at test time with batch 1)."""
    if per_image:
        return torch.cat([tr.translate_tensor(x[i:i + 1]) for i in range(len(x))])
    return torch.cat([tr.translate_tensor(x[i:i + 64]) for i in range(0, len(x), 64)])


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict:
    from ganforge.metrics.imagesim import ssim

    l1 = (pred - target).abs().flatten(1).mean(1)
    mse = (pred - target).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    s = ssim(pred, target)
    return {"L1": float(l1.mean()), "PSNR_dB": float(psnr.mean()), "SSIM": float(s.mean()), "n": len(pred)}


def untrained_translator(cfg, cin: int, cout: int):
    """The generator exactly as training initialises it (same seed), wrapped like a trained one."""
    from ganforge.translate.apply import Translator, _batch_stats_norms
    from ganforge.train.adversarial import init_normal
    from ganforge.translate.tasks import build_generator

    r = cfg.resolved()
    torch.manual_seed(r.seed)
    net = init_normal(build_generator(r, cin, cout)).eval()
    if r.norm == "batch":
        _batch_stats_norms(net)
    return Translator(net, in_channels=cin, out_channels=cout, multiple=r.multiple(),
                      labels=r.model == "spade", num_classes=r.num_classes, name="untrained").to("cpu", "fp32")


def train(name: str, data: Path, run: Path, args) -> tuple[dict, dict]:
    from ganforge.translate import TranslateConfig, train_translator

    opts = dict(EXPERIMENTS[name])
    if args.steps:
        opts["steps"] = args.steps
    if args.batch_size:
        opts["batch_size"] = args.batch_size
    opts.update(data=str(data), seed=args.seed, precision="auto", sample_every=opts["steps"], ckpt_every=args.ckpt_every,
                log_every=25, progress=False, tensorboard=False)
    if args.eval_only:  # score an existing run again: keep the training record of the JSON it wrote
        old = json.loads(Path(args.json or run.parent.parent / f"translate_{name}.json").read_text())
        return {k: old[k] for k in ("options", "resolved", "train_wall_s", "summary")}, \
            {"cfg": TranslateConfig(**old["options"])}
    cfg = TranslateConfig(**opts)
    t0 = time.perf_counter()
    if args.fresh and run.exists():
        shutil.rmtree(run)
    summary = train_translator(cfg, out=run, resume="auto")
    wall = time.perf_counter() - t0
    resolved = {k: v for k, v in vars(cfg.resolved()).items()}
    return {"options": opts, "resolved": resolved, "train_wall_s": round(wall, 1),
            "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}}, \
        {"cfg": cfg}


def _round(obj):
    if isinstance(obj, float):
        return round(obj, 4) if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    return obj


def eval_precision(args) -> str:
    return args.eval_precision


# --- experiments ---------------------------------------------------------------------------------

def exp_pix2pix(args, out: Path) -> dict:
    from ganforge.translate import load_translator

    data = out / "fashion_edges"
    n_train, n_test = args.n_train or DATA_SIZES["pix2pix"][0], args.n_test or DATA_SIZES["pix2pix"][1]
    info = _build(data, lambda: tdata.fashion_edges(data, n_train, n_test))
    rec, extra = train("pix2pix", data / "train", out / "runs" / "pix2pix", args)
    a, _ = load_folder(data / "test" / "A", "L")
    b, _ = load_folder(data / "test" / "B", "L")
    t0 = time.perf_counter()
    tr = load_translator(out / "runs" / "pix2pix", device="cpu", precision=eval_precision(args))
    fake = translate(tr, a, per_image=True)
    untrained = translate(untrained_translator(extra["cfg"], 1, 1), a, per_image=True)
    rec["eval"] = {
        "held_out_pairs": len(a),
        "trained": image_metrics(fake, b),
        "identity_baseline (output = input)": image_metrics(a, b),
        "inverted_input_baseline (output = 1 - input)": image_metrics(1 - a, b),
        "mean_training_item_baseline": image_metrics(
            load_folder(data / "train" / "B", "L")[0].mean(0, keepdim=True).expand_as(b).contiguous(), b),
        "untrained_network (same init)": image_metrics(untrained, b),
        "eval_precision": tr.precision, "eval_s": round(time.perf_counter() - t0, 1),
        "note": "BatchNorm U-Net applied one image per call (per-image statistics, upstream's test mode); "
                "dropout off at test time",
    }
    _save_examples(out / "examples_pix2pix.png", [a[:8], fake[:8], b[:8]])
    rec["data"] = info
    return rec


def _build(folder: Path, make) -> dict:
    marker = folder / "dataset.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    t0 = time.perf_counter()
    info = make()
    info["build_s"] = round(time.perf_counter() - t0, 1)
    marker.write_text(json.dumps(info))
    return info


def _save_examples(path: Path, columns: list[torch.Tensor]) -> None:
    from torchvision.utils import save_image

    cols = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in columns]
    save_image(torch.stack(cols, 1).flatten(0, 1), path, nrow=len(cols), padding=2, pad_value=1.0)


def palette_decode(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W in [0, 1] -> N×H×W class ids of the nearest palette colour."""
    pal = torch.from_numpy(tdata.PALETTE).float() / 255.0  # K×3
    d = ((x.permute(0, 2, 3, 1)[..., None, :] - pal) ** 2).sum(-1)  # N×H×W×K
    return d.argmin(-1)


def confusion(pred: torch.Tensor, true: torch.Tensor, k: int) -> torch.Tensor:
    return torch.bincount((true.flatten() * k + pred.flatten()), minlength=k * k).view(k, k)


def iou_report(conf: torch.Tensor) -> dict:
    conf = conf.double()
    tp = conf.diag()
    iou = tp / (conf.sum(0) + conf.sum(1) - tp).clamp_min(1)
    names = ["background"] + [f"digit {d}" for d in range(10)]
    return {"per_class_IoU": {n: float(v) for n, v in zip(names, iou)}, "mIoU (11 classes)": float(iou.mean()),
            "mIoU (10 digit classes)": float(iou[1:].mean()),
            "pixel_accuracy": float(tp.sum() / conf.sum())}


def binary_iou(pred_fg: torch.Tensor, true_fg: torch.Tensor) -> float:
    inter = (pred_fg & true_fg).sum().item()
    union = (pred_fg | true_fg).sum().item()
    return inter / max(union, 1)


def otsu(gray: np.ndarray) -> float:
    """Otsu's threshold of one uint8 image."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    return float(np.nanargmax(between))


def exp_seg(args, out: Path) -> dict:
    from ganforge.translate import load_translator

    data = out / "digit_scenes"
    n_train, n_test = args.n_train or DATA_SIZES["seg"][0], args.n_test or DATA_SIZES["seg"][1]
    info = _build(data, lambda: tdata.digit_scenes(data, n_train, n_test))
    rec, _ = train("seg", data / "seg_train", out / "runs" / "seg", args)
    photos, _ = load_folder(data / "seg_test" / "A", "RGB")
    true, _ = load_folder(data / "spade_test" / "labels", "ids")
    t0 = time.perf_counter()
    tr = load_translator(out / "runs" / "seg", device="cpu", precision=eval_precision(args))
    out_rgb = translate(tr, photos, per_image=True)
    pred = palette_decode(out_rgb)
    model = iou_report(confusion(pred, true, 11))
    model["foreground_IoU (digit vs background)"] = binary_iou(pred > 0, true > 0)
    # threshold baseline: Otsu on luma per image -> foreground; class = the most frequent training digit class
    train_ids, _ = load_folder(data / "spade_train" / "labels", "ids")
    counts = torch.bincount(train_ids.flatten(), minlength=11)
    majority = int(counts[1:].argmax()) + 1
    luma = (photos * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    g8 = (luma * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    fg = torch.from_numpy(np.stack([g > otsu(g) for g in g8]))
    base_pred = torch.where(fg, torch.tensor(majority), torch.tensor(0))
    base = iou_report(confusion(base_pred, true, 11))
    base["foreground_IoU (digit vs background)"] = binary_iou(fg, true > 0)
    rec["eval"] = {"held_out_scenes": len(photos), "trained_pix2pix": model,
                   "otsu_threshold_baseline": base,
                   "baseline_definition": f"per image: Otsu threshold on BT.601 luma -> foreground; every foreground "
                                          f"pixel labelled the most frequent digit class of the training labels "
                                          f"(id {majority} = digit {majority - 1}); background 0",
                   "decoding": "nearest of the 11 palette colours (RGB distance)",
                   "eval_precision": tr.precision, "eval_s": round(time.perf_counter() - t0, 1)}
    _save_examples(out / "examples_seg.png", [photos[:8], out_rgb[:8],
                                              torch.from_numpy(tdata.PALETTE).float().div(255)[true[:8]].permute(0, 3, 1, 2)])
    rec["data"] = info
    return rec


def digit_crop(img: torch.Tensor, box: list[int]) -> torch.Tensor:
    """A digit's ink box from an image (C×H×W in [0, 1]) as an MNIST-like patch: grey, the crop's
    median (the background) mapped to 0 and its 99th percentile to 1 (bright ink on dark), the box
    made square and padded by 20 % per side (MNIST: a 20 px digit in a 28 px frame)."""
    gray = img.mean(0) if img.shape[0] == 3 else img[0]
    y0, x0, y1, x1 = box
    side = max(y1 - y0, x1 - x0)
    pad = round(side * 0.2)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    half = side / 2 + pad
    ty0, tx0 = int(round(cy - half)), int(round(cx - half))
    size = int(round(2 * half))
    padded = F.pad(gray[None, None], (size, size, size, size), mode="replicate")[0, 0]
    crop = padded[ty0 + size:ty0 + 2 * size, tx0 + size:tx0 + 2 * size]
    lo, hi = crop.median(), torch.quantile(crop.flatten(), 0.99)
    return ((crop - lo) / (hi - lo).clamp_min(1e-3)).clamp(0, 1)


@torch.no_grad()
def classify_crops(clf, crops: list[torch.Tensor]) -> torch.Tensor:
    x = torch.stack([F.interpolate(c[None, None], size=(32, 32), mode="bilinear", align_corners=False,
                                   antialias=True)[0] for c in crops])
    return clf(x).argmax(1)


def exp_spade(args, out: Path) -> dict:
    from ganforge.metrics.classifier import load_classifier
    from ganforge.translate import load_translator

    data = out / "digit_scenes"
    n_train, n_test = args.n_train or DATA_SIZES["spade"][0], args.n_test or DATA_SIZES["spade"][1]
    info = _build(data, lambda: tdata.digit_scenes(data, n_train, n_test))
    rec, _ = train("spade", data / "spade_train", out / "runs" / "spade", args)
    ids, names = load_folder(data / "spade_test" / "labels", "ids")
    real, _ = load_folder(data / "spade_test" / "images", "RGB")
    boxes = json.loads((data / "boxes_test.json").read_text())
    t0 = time.perf_counter()
    tr = load_translator(out / "runs" / "spade", device="cpu", precision=eval_precision(args))
    fake = translate(tr, ids, per_image=False)
    clf = load_classifier("mnist", progress=False)
    crops = {"generated": [], "real": [], "label_mask": []}
    classes = []
    for i, name in enumerate(names):
        for item in boxes[name]:
            c = item["class"]
            classes.append(c)
            crops["generated"].append(digit_crop(fake[i], item["box"]))
            crops["real"].append(digit_crop(real[i], item["box"]))
            crops["label_mask"].append(digit_crop((ids[i] == c + 1).float()[None], item["box"]))
    target = torch.tensor(classes)
    acc = {k: float((classify_crops(clf, v) == target).float().mean()) for k, v in crops.items()}
    # ink contrast inside vs outside the labelled digit regions: does G paint the regions at all?
    luma = lambda x: x.mean(1)  # noqa: E731
    inside = ids > 0
    contrast = {k: float(luma(v)[inside].mean() - luma(v)[~inside].mean()) for k, v in (("generated", fake), ("real", real))}
    rec["eval"] = {"held_out_scenes": len(names), "digits": len(classes),
                   "mnist_classifier_accuracy": {"generated image crops": acc["generated"],
                                                 "real image crops": acc["real"],
                                                 "label mask crops (the requested shape itself)": acc["label_mask"]},
                   "classifier": f"ganforge.metrics.classifier mnist (test accuracy {clf.test_accuracy:.4f})",
                   "crop": digit_crop.__doc__.split("\n\n")[0].replace("\n", " ").replace("    ", " "),
                   "mean_luma_inside_minus_outside_digits": contrast,
                   "eval_precision": tr.precision, "eval_s": round(time.perf_counter() - t0, 1),
                   "note": "the digit's shape is given by the label map, so this measures whether G renders the "
                           "labelled regions as legible ink on a background, not whether it knows digit classes"}
    pal = torch.from_numpy(tdata.PALETTE).float().div(255)
    _save_examples(out / "examples_spade.png", [pal[ids[:8]].permute(0, 3, 1, 2), fake[:8], real[:8]])
    rec["data"] = info
    return rec


class TinyDomainNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x * 2 - 1)


def train_domain_net(a: torch.Tensor, b: torch.Tensor, steps: int = 300, seed: int = 0) -> TinyDomainNet:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TinyDomainNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.cat([a, b])
    y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).long()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def exp_cyclegan(args, out: Path) -> dict:
    from ganforge.metrics.classifier import load_classifier
    from ganforge.translate import load_translator

    data = out / "mnist_inverted"
    n_train, n_test = args.n_train or DATA_SIZES["cyclegan"][0], args.n_test or DATA_SIZES["cyclegan"][1]
    info = _build(data, lambda: tdata.mnist_inverted(data, n_train, n_test))
    rec, _ = train("cyclegan", data / "train", out / "runs" / "cyclegan", args)
    a, names = load_folder(data / "test" / "A", "L")
    b, _ = load_folder(data / "test" / "B", "L")
    labels = json.loads((data / "test_labels.json").read_text())
    y = torch.tensor([labels[n] for n in names])
    t0 = time.perf_counter()
    run = out / "runs" / "cyclegan"
    fake_b = translate(load_translator(run, direction="AtoB", device="cpu", precision=eval_precision(args)), a, False)
    tr_ba = load_translator(run, direction="BtoA", device="cpu", precision=eval_precision(args))
    fake_a = translate(tr_ba, b, False)
    clf = load_classifier("mnist", progress=False)
    train_a, _ = load_folder(data / "train" / "A", "L")
    train_b, _ = load_folder(data / "train" / "B", "L")
    dom = train_domain_net(train_a, train_b)
    with torch.no_grad():
        def cls(x):
            return clf(x).argmax(1)

        def domain(x):
            return dom(x).argmax(1)  # 0 = normal MNIST (white on black), 1 = inverted

        res = {
            "A->B (normal -> inverted)": {
                "class_kept (MNIST classifier on 1 - output)": float((cls(1 - fake_b) == y).float().mean()),
                "called_target_domain (tiny CNN)": float((domain(fake_b) == 1).float().mean()),
                "called_target_domain (mean intensity > 0.5)": float((fake_b.flatten(1).mean(1) > 0.5).float().mean()),
                "L1_to_exact_inversion": float((fake_b - b).abs().mean()),
            },
            "B->A (inverted -> normal)": {
                "class_kept (MNIST classifier on output)": float((cls(fake_a) == y).float().mean()),
                "called_target_domain (tiny CNN)": float((domain(fake_a) == 0).float().mean()),
                "called_target_domain (mean intensity < 0.5)": float((fake_a.flatten(1).mean(1) < 0.5).float().mean()),
                "L1_to_exact_inversion": float((fake_a - a).abs().mean()),
            },
            "references": {
                "MNIST classifier on the real test digits": float((cls(a) == y).float().mean()),
                "tiny domain CNN accuracy on real held-out A and B": float(
                    ((domain(a) == 0).float().mean() + (domain(b) == 1).float().mean()) / 2),
                "identity (no translation) called target domain": float((domain(a) == 1).float().mean()),
            },
        }
    ab, ba = res["A->B (normal -> inverted)"], res["B->A (inverted -> normal)"]
    res["targets"] = {
        "class kept >= 90 % (both directions)": min(ab["class_kept (MNIST classifier on 1 - output)"],
                                                   ba["class_kept (MNIST classifier on output)"]) >= 0.90,
        "target domain >= 80 % (both directions, tiny CNN)": min(ab["called_target_domain (tiny CNN)"],
                                                                ba["called_target_domain (tiny CNN)"]) >= 0.80,
    }
    res["domain_classifier"] = ("TinyDomainNet (2 convs + linear), 300 Adam steps on the run's training A (label 0) "
                                "vs B (label 1) images; it can (and likely does) rely on overall brightness")
    res["eval_precision"] = tr_ba.precision
    res["eval_s"] = round(time.perf_counter() - t0, 1)
    rec["eval"] = res
    _save_examples(out / "examples_cyclegan.png", [a[:8], fake_b[:8], b[:8], fake_a[:8]])
    rec["data"] = info
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=["pix2pix", "seg", "spade", "cyclegan"])
    p.add_argument("--out", required=True, help="work folder: datasets and runs go here")
    p.add_argument("--json", help="write the results here (default: OUT/translate_EXPERIMENT.json)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the machine is shared)")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--n-train", type=int, default=0)
    p.add_argument("--n-test", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-precision", default="fp32", help="precision of the held-out translation (training: auto)")
    p.add_argument("--ckpt-every", type=int, default=0, help="checkpoints during training (0: only at the end)")
    p.add_argument("--eval-only", action="store_true",
                   help="only score the finished run again (training figures are kept from --json)")
    p.add_argument("--fresh", action="store_true", help="delete an existing run of this experiment in OUT/runs first (else it is resumed)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.device import resolve_precision

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rec = {"experiment": args.experiment}
    rec.update(globals()[f"exp_{args.experiment}"](args, out))
    rec["environment"] = {"cpu": cpu_flags(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "precision_auto_resolved_to": resolve_precision("auto", torch.device("cpu")),
                          "machine_shared_with_other_jobs": True, "load_avg_at_end": os.getloadavg()}
    rec["total_wall_s"] = round(time.perf_counter() - t0, 1)
    rec["command"] = " ".join(["python", "benchmarks/quality_translate.py", *sys.argv[1:]])
    path = Path(args.json) if args.json else out / f"translate_{args.experiment}.json"
    if args.eval_only:  # the training run's own wall time, command and environment stay
        old = json.loads(path.read_text())
        rec["rescored_by"] = rec["command"]
        rec["rescore_wall_s"] = rec["total_wall_s"]
        rec.update({k: old[k] for k in ("total_wall_s", "command", "environment")})
    text = json.dumps(_round(rec), indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

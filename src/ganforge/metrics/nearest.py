"""Memorisation and mode-collapse report: for generated samples, their nearest training images in
feature space and in pixel space, a side-by-side grid, the distance histogram, near-copy flags,
and diversity figures (mean pairwise feature distance vs real data, predicted class histogram).

A near-copy is a sample whose nearest training image is closer in pixels than real held-out
images usually are to the training set: pixel RMSE below ``copy_threshold`` (default: the 1st
percentile of the held-out-real -> train nearest RMSE, so ~1 % of genuine new images would be
flagged), which adapts to the dataset instead of a magic constant.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from . import core
from .evaluation import Source, cached_features
from .extractors import Extractor


def _pixel_nn(queries: torch.Tensor, train: torch.Tensor, k: int, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest training images by pixel RMSE ([0,1] scale), at the training images' size."""
    q = queries.float() / 255
    if q.shape[1:] != train.shape[1:]:
        if q.shape[1] != train.shape[1]:
            q = q.mean(1, keepdim=True).expand(-1, train.shape[1], -1, -1)
        q = F.interpolate(q, size=train.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    # float64: cdist's matrix-product path in float32 reports ~2e-4 instead of 0 for an exact copy
    qf = q.flatten(1).double()
    dims = qf.shape[1]
    dists, idxs = [], []
    for start in range(0, len(train), 8192):
        t = train[start:start + 8192].double().flatten(1) / 255
        d = (torch.cdist(qf, t) / dims ** 0.5).float()
        v, i = d.topk(min(k, d.shape[1]), dim=1, largest=False)
        dists.append(v)
        idxs.append(i + start)
    d, i = torch.cat(dists, 1), torch.cat(idxs, 1)
    v, order = d.topk(k, dim=1, largest=False)
    return v, i.gather(1, order)


def _feature_nn(fq: torch.Tensor, ft: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    vs, idx = [], []
    for start in range(0, len(fq), 256):  # bounded memory: 256 × N_train distances at a time
        v, i = torch.cdist(fq[start:start + 256].double(), ft.double()).topk(k, dim=1, largest=False)
        vs.append(v.float())
        idx.append(i)
    return torch.cat(vs), torch.cat(idx)


def nearest_report(generated: Source, train: Source, extractor: Extractor, out_dir: str | Path, *, k: int = 5,
                   held_out: Source | None = None, max_rows: int = 16, copy_threshold: float | None = None,
                   progress: bool = True) -> dict:
    """Write ``nearest_grid.png``, ``nearest_hist.png`` and ``nearest.json`` to ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..imageio import save_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fg = extractor.extract(generated.images, progress=progress, desc="features generated")
    ft = cached_features(train, extractor, progress=progress)
    feat_d, feat_i = _feature_nn(fg.features, ft.features, k)
    pix_d, pix_i = _pixel_nn(generated.images, train.images, k)
    baseline = None
    if held_out is not None:
        baseline, _ = _pixel_nn(held_out.images, train.images, 1)
        baseline = baseline[:, 0]
    if copy_threshold is None:
        copy_threshold = float(baseline.quantile(0.01)) if baseline is not None else 0.05
    flagged = (pix_d[:, 0] < copy_threshold).nonzero().flatten().tolist()

    # Grid: each row = generated | k nearest by features | k nearest by pixels.
    rows = min(max_rows, len(generated.images))
    order = pix_d[:, 0].argsort()[:rows]  # the closest (most suspicious) samples first
    size = train.images.shape[-1]
    channels = max(generated.images.shape[1], train.images.shape[1])

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255
        if x.shape[0] != channels:
            x = x.expand(channels, -1, -1)
        if x.shape[-1] != size:
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        return x

    tiles = []
    for r in order.tolist():
        tiles.append(prep(generated.images[r]))
        tiles += [prep(train.images[j]) for j in feat_i[r].tolist()]
        tiles += [prep(train.images[j]) for j in pix_i[r].tolist()]
    from torchvision.utils import make_grid

    grid = make_grid(torch.stack(tiles), nrow=1 + 2 * k, padding=2, pad_value=1.0)
    save_image(grid, out_dir / "nearest_grid.png")

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].hist(pix_d[:, 0].numpy(), bins=40, alpha=0.6, density=True, label="generated -> train")
    if baseline is not None:
        ax[0].hist(baseline.numpy(), bins=40, alpha=0.6, density=True, label="held-out real -> train")
    ax[0].axvline(copy_threshold, color="r", linestyle="--", label="near-copy threshold")
    ax[0].set_xlabel("nearest training image, pixel RMSE")
    ax[0].legend()
    ax[1].hist(feat_d[:, 0].numpy(), bins=40, alpha=0.6, density=True, label="generated -> train")
    if held_out is not None:
        fh = extractor.extract(held_out.images)
        ax[1].hist(_feature_nn(fh.features, ft.features, 1)[0][:, 0].numpy(), bins=40, alpha=0.6, density=True,
                   label="held-out real -> train")
    ax[1].set_xlabel(f"nearest training image, {extractor.name} feature distance")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "nearest_hist.png", dpi=100)
    plt.close(fig)

    diversity = {
        "mean_pairwise_feature_distance_generated": core.mean_pairwise_distance(fg.features),
        "mean_pairwise_feature_distance_train": core.mean_pairwise_distance(ft.features),
    }
    diversity["ratio"] = diversity["mean_pairwise_feature_distance_generated"] / max(
        diversity["mean_pairwise_feature_distance_train"], 1e-12)
    if fg.logits is not None and extractor.name != "inception":
        hist = torch.bincount(fg.logits.argmax(1), minlength=fg.logits.shape[1]).float()
        p = hist / hist.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        diversity["predicted_class_histogram"] = hist.int().tolist()
        diversity["class_entropy_nats"] = entropy
        diversity["class_entropy_max_nats"] = float(torch.log(torch.tensor(float(len(hist)))))
    report = {
        "k": k, "n_generated": len(generated.images), "n_train": len(train.images),
        "generated": generated.describe(), "train": train.describe(), "extractor": extractor.protocol(),
        "copy_threshold_pixel_rmse": copy_threshold,
        "copy_threshold_rule": "1st percentile of held-out real -> train nearest RMSE" if baseline is not None
        else "fixed 0.05 (no held-out set given)",
        "near_copies": [{"index": i, "pixel_rmse": float(pix_d[i, 0]), "train_index": int(pix_i[i, 0])}
                        for i in flagged],
        "near_copy_fraction": len(flagged) / max(len(generated.images), 1),
        "nearest_pixel_rmse_median": float(pix_d[:, 0].median()),
        "nearest_feature_distance_median": float(feat_d[:, 0].median()),
        "held_out_pixel_rmse_median": None if baseline is None else float(baseline.median()),
        "diversity": diversity,
        "files": {"grid": "nearest_grid.png", "histogram": "nearest_hist.png",
                  "grid_layout": f"rows: generated | {k} nearest by features | {k} nearest by pixels; "
                                 "closest samples first"},
    }
    (out_dir / "nearest.json").write_text(json.dumps(report, indent=2))
    return report

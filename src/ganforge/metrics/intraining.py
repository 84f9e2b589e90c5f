"""Evaluation inside the training loop: one object, built once, whose reference features are
extracted once (and cached on disk across runs), so each call only pays for the generated side."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import GanforgeError
from . import core
from .evaluation import cached_features, load_source
from .extractors import auto_extractor, get_extractor


class InTrainingEvaluator:
    """``evaluator(sample_fn) -> float`` (lower is better: FID or KID mean) against ``reference``.

    ``sample_fn(n)`` must return float N×C×H×W in [0, 1]; it is quantised to uint8 like a saved
    PNG so the in-training number equals what ``ganforge eval`` reports on saved samples."""

    def __init__(self, reference: str, metric: str = "fid", n_samples: int = 2048, extractor: str = "auto", *,
                 resolution: int, channels: int, seed: int = 0, batch: int = 256, progress: bool = False) -> None:
        metric = metric.lower()
        if metric not in ("fid", "kid"):
            raise GanforgeError(f"--eval-metric must be fid or kid, not {metric!r}")
        self.metric, self.n_samples, self.batch, self.seed = metric, int(n_samples), batch, seed
        self.resolution, self.channels = resolution, channels
        self.extractor_name = auto_extractor(reference) if extractor == "auto" else extractor
        self.extractor = get_extractor(self.extractor_name, progress=progress)
        ref = load_source(reference, n=self.n_samples, seed=seed + 1, resolution=resolution, progress=progress)
        self.reference = reference
        self.ref_features = cached_features(ref, self.extractor, progress=progress).features
        self.ref_stats = core.feature_stats(self.ref_features) if metric == "fid" else None
        self.last: float | None = None

    @torch.no_grad()
    def __call__(self, sample_fn: Callable[[int], torch.Tensor]) -> float:
        parts = []
        for start in range(0, self.n_samples, self.batch):
            x = sample_fn(min(self.batch, self.n_samples - start))
            parts.append(x.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8))
        images = torch.cat(parts)
        feats = self.extractor.extract(images).features
        if self.metric == "fid":
            value = core.frechet_distance(*core.feature_stats(feats), *self.ref_stats)
        else:
            value = core.kid(feats, self.ref_features, subsets=50, subset_size=min(1000, len(feats)),
                             seed=self.seed)[0]
        self.last = float(value)
        return self.last

    def protocol(self) -> dict:
        return {"metric": self.metric, "reference": self.reference, "n": self.n_samples,
                "extractor": self.extractor.protocol()}

"""``evaluate(A, B)``: load two image sources, extract features (reference features cached), compute
the requested metrics, and return each number with the full protocol that produced it.

A is the set under test (a run directory's EMA samples, a folder, or a dataset split); B is the
reference. Precision is measured on A against B's manifold; IS is computed on A alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .. import paths
from ..version import __version__
from ..errors import GanforgeError
from . import core
from .extractors import Extractor, Features, auto_extractor, get_extractor

METRICS = ("fid", "kid", "is", "pr", "dc")
TEXT_METRICS = ("rprecision", "clip")  # text-to-image runs only (metrics/texteval.py); no reference set
# Below these sample counts a metric is too biased / noisy to compare runs (FID: Heusel et al.
# recommend >= 10k, 2,048 is the usual floor; KID is unbiased and made for small n).
MIN_N = {"fid": 2048, "kid": 100, "is": 5000, "pr": 1000, "dc": 1000}
MIN_N_HINT = {
    "fid": "FID is biased upwards at small n and not comparable across n; use KID (unbiased) instead",
    "kid": "KID's std over subsets will be large",
    "is": "IS is usually reported on 50,000 samples",
    "pr": "k-NN manifolds are coarse at small n",
    "dc": "k-NN manifolds are coarse at small n",
}


NATIVE_SIZE = {"mnist": 28, "fashion-mnist": 28, "digits": 8}


class EvalWarning(UserWarning):
    """A number was computed but under a protocol too weak to trust (e.g. small n)."""


class MetricSkipped(EvalWarning):
    """A metric could not be computed here (CLIP score without CLIP's weights); the others were.
    ``metric``: its name; the message: one line saying why and how to get what it needs."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(reason)
        self.metric = metric


@dataclass
class Source:
    """Images (uint8 N×C×H×W) loaded from a spec, with a description for the protocol."""

    spec: str
    kind: str  # "run", "dataset", "folder", "tensor"
    images: torch.Tensor
    labels: torch.Tensor | None = None
    info: dict = field(default_factory=dict)
    cacheable: bool = False  # reference datasets/folders: features may be cached
    prompts: list[str] | None = None  # a text run's samples: the prompt each image was drawn from
    text_encoder: object = None  # ... and the run's frozen text encoder (R-precision)

    def describe(self) -> dict:
        h, w = self.images.shape[-2:]
        return {"source": self.spec, "kind": self.kind, "n": int(len(self.images)),
                "channels": int(self.images.shape[1]), "size": f"{h}x{w}", "dtype": "uint8", **self.info}


def _is_run_dir(spec: str) -> bool:
    return (Path(spec) / "run.json").is_file()


def read_folder(path: Path, *, progress: bool = False) -> tuple[torch.Tensor, list[str]]:
    """Every image of a folder (recursive, sorted) at its native size, as uint8 N×C×H×W; greyscale
    (C=1) only if every image is. No resizing: evaluation must not alter pixels unless asked."""
    import numpy as np
    from PIL import Image

    from ..data.folder import list_images
    from ..imageio import open_image

    files, _ = list_images(path)
    if not files:
        raise GanforgeError(f"{path}: no images found")
    grey = True
    for f in files:
        with Image.open(f) as img:
            grey = grey and img.mode in ("L", "1", "I;16", "I", "F", "LA")
    mode = "L" if grey else "RGB"
    arrays, size = [], None
    for f in files:
        arr = np.asarray(open_image(f, mode), dtype=np.uint8)
        if size is None:
            size = arr.shape
        elif arr.shape != size:
            raise GanforgeError(f"{path}: images differ in size ({f.name} is {arr.shape[1]}x{arr.shape[0]}, "
                                f"others {size[1]}x{size[0]}); pass --resolution to resize them all")
        arrays.append(arr)
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous(), [str(f.relative_to(path)) for f in files]


def subsample(n_total: int, n: int | None, seed: int) -> torch.Tensor | None:
    """Seeded choice of n of n_total indices (None: use all)."""
    if n is None or n >= n_total:
        return None
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def load_source(spec: str, *, n: int | None = None, seed: int = 0, resolution: int | None = None,
                truncation: float = 1.0, progress: bool = True, prompts: str | os.PathLike | None = None) -> Source:
    """Load ``spec``: a run directory (n samples of its EMA generator, seed ``seed``; a text run's
    drawn from prompts, see :mod:`ganforge.metrics.texteval`, ``prompts`` a file of them), a
    built-in dataset split, or an image folder (native size of its first image unless ``resolution``)."""
    if _is_run_dir(spec):
        from ..sample import load_generator

        if n is None:
            raise GanforgeError("sampling from a run directory needs --n")
        gen = load_generator(spec)
        if getattr(gen, "is_text", False):
            from .texteval import sample_text_run

            images, drawn, pinfo = sample_text_run(gen, spec, n, seed=seed, truncation=truncation, prompts_file=prompts)
            info = {"generator": "EMA", "step": int(getattr(gen, "step", -1)), "seed": seed, "truncation": truncation,
                    "quantised": "float [0,1] -> uint8 round (as PNG)", **pinfo}
            return Source(spec, "run", images, None, info, prompts=drawn, text_encoder=gen.text_encoder)
        if prompts is not None:
            raise GanforgeError(f"--prompts is for text-to-image runs; {spec} was not trained with --text")
        chunks = []
        for start in range(0, n, 256):
            chunks.append(gen.sample(min(256, n - start), seed=seed + start, truncation=truncation))
        x = torch.cat(chunks)
        images = x.clamp(0, 1).mul(255).round().to(torch.uint8)  # exactly what a saved PNG holds
        info = {"generator": "EMA", "step": int(getattr(gen, "step", -1)), "seed": seed,
                "truncation": truncation, "quantised": "float [0,1] -> uint8 round (as PNG)"}
        return Source(spec, "run", images, None, info)
    from ..data import load_dataset
    from ..data.builtin import parse_builtin as builtin_name

    is_builtin = builtin_name(spec) is not None
    if not is_builtin and not Path(spec).expanduser().is_dir():
        raise GanforgeError(f"{spec}: not a run directory, a built-in dataset or an image folder")
    if not is_builtin and (streamed := _load_prepared_subset(spec, n, seed, resolution, progress)) is not None:
        return streamed
    if not is_builtin and resolution is None:
        images, _ = read_folder(Path(spec).expanduser(), progress=progress)
        labels = torch.zeros(len(images), dtype=torch.int64)
        description, resize, kind = f"folder {Path(spec).expanduser().resolve()}", "none (native size)", "folder"
    else:
        res = resolution or NATIVE_SIZE.get(builtin_name(spec)[0], 28) if is_builtin else resolution
        ds = load_dataset(spec, resolution=res, progress=progress)
        images, labels, description = ds.images, ds.labels, ds.source
        kind = "dataset" if is_builtin else "folder"
        native = NATIVE_SIZE.get(builtin_name(spec)[0]) if is_builtin else None
        resize = "none" if res == native else f"shorter side to {res}, bicubic, centre crop (ganforge.data)"
    idx = subsample(len(images), n, seed)
    info = {"description": description, "resize": resize,
            "subset": "all" if idx is None else f"{len(idx)} of {len(images)}, seeded randperm seed={seed}"}
    if idx is not None:
        images, labels = images[idx], labels[idx]
    return Source(spec, kind, images, labels, info, cacheable=True)


def _load_prepared_subset(spec: str, n: int | None, seed: int, resolution: int | None,
                          progress: bool) -> Source | None:
    """A prepared dataset, or a folder at a given resolution (through the training cache): only
    the ``n`` chosen images are read from disk, so a reference set costs n images of memory
    whatever the dataset's size. The same images and pixels as the in-memory path (the same seeded
    choice over the same order), hence the same cached features. None: not streamable here
    (GANFORGE_PREPARE=0, or a folder at its native size)."""
    import numpy as np

    from ..data.prepared import is_prepared, open_prepared, open_training_data

    path = Path(spec).expanduser()
    if is_prepared(path):
        ds = open_prepared(path)
        if resolution is not None and resolution != ds.resolution:
            raise GanforgeError(f"{spec} was prepared at {ds.resolution}x{ds.resolution}, not {resolution}; "
                                f"prepare it again with --resolution {resolution}")
        resize = f"prepared at {ds.resolution} (shorter side, bicubic, centre crop)"
    elif resolution is not None:
        ds = open_training_data(path, resolution=resolution, progress=progress)
        if ds is None:
            return None
        resize = f"shorter side to {resolution}, bicubic, centre crop (ganforge.data)"
    else:
        return None
    idx = subsample(len(ds), n, seed)
    rows = np.arange(len(ds)) if idx is None else idx.numpy()
    images = torch.from_numpy(ds.read(rows))
    labels = ds.labels[torch.from_numpy(rows)]
    info = {"description": ds.source, "resize": resize,
            "subset": "all" if idx is None else f"{len(idx)} of {len(ds)}, seeded randperm seed={seed}"}
    return Source(spec, "folder", images, labels, info, cacheable=True)


def _source_fingerprint(source: Source) -> str:
    """Identity of a reference set for the cache: its spec, options, and a hash of the pixels."""
    digest = hashlib.sha256(source.images.numpy().tobytes()).hexdigest()[:16]
    return digest


def cached_features(source: Source, extractor: Extractor, *, progress: bool = True) -> Features:
    """Features of ``source``; for datasets and folders cached under ``$GANFORGE_HOME/cache/features``
    keyed by extractor + pixel hash, so repeated evaluation and in-training evaluation reuse them."""
    if not source.cacheable:
        return extractor.extract(source.images, progress=progress, desc=f"features {source.spec}")
    from safetensors.torch import load_file, save_file

    key = f"{extractor.cache_key()}-{_source_fingerprint(source)}"
    path = paths.cache_dir("cache") / "features" / f"{key}.safetensors"
    if path.is_file():
        try:
            data = load_file(str(path))
            return Features(data["features"], data.get("logits"))
        except Exception:
            path.unlink(missing_ok=True)
    feats = extractor.extract(source.images, progress=progress, desc=f"features {source.spec}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"features": feats.features.contiguous()}
    if feats.logits is not None:
        tensors["logits"] = feats.logits.contiguous()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"source": source.spec, "extractor": json.dumps(extractor.protocol())})
    tmp.replace(path)
    return feats


@dataclass
class EvalResult:
    metric: str
    value: float
    std: float | None
    protocol: dict

    def summary(self) -> str:
        pm = f" ± {self.std:.4g}" if self.std is not None else ""
        p = self.protocol
        if "extractor" not in p:  # a text metric (rprecision, clip): no reference set, no feature network
            return f"{self.metric:10s} {self.value:.4f}{pm}  (n={p['n_a']}, {p.get('details', '')})"
        return (f"{self.metric:10s} {self.value:.4f}{pm}  (n_a={p['n_a']}, n_b={p['n_b']}, "
                f"extractor={p['extractor']['extractor']}{', ' + p['details'] if p.get('details') else ''})")

    def as_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "std": self.std, **self.protocol}


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    items = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    aliases = {"isc": "is", "inception_score": "is", "prc": "pr", "precision_recall": "pr",
               "density_coverage": "dc"}
    items = [aliases.get(m, m) for m in items]
    items = ["rprecision" if m in ("r-precision", "r_precision") else "clip" if m in ("clipscore", "clip_score")
             else m for m in items]
    bad = [m for m in items if m not in METRICS + TEXT_METRICS]
    if bad or not items:
        raise GanforgeError(f"unknown metric(s) {', '.join(bad) or '(none)'}; choose from: "
                            f"{', '.join(METRICS + TEXT_METRICS)}")
    return list(dict.fromkeys(items))


def compute(metrics: Sequence[str], fa: Features, fb: Features, *, seed: int = 0, kid_subsets: int = 100,
            kid_subset_size: int = 1000, pr_k: int = 3, is_splits: int = 10,
            is_available: str | None = None) -> list[tuple[str, float, float | None, str]]:
    """(metric, value, std, details) for each requested metric from precomputed features."""
    out = []
    for m in metrics:
        if m == "fid":
            out.append(("fid", core.fid(fa.features, fb.features), None, ""))
        elif m == "kid":
            n_min = min(len(fa.features), len(fb.features))
            # subsets as large as the whole set would all be identical (std 0): use half then
            size = kid_subset_size if n_min > kid_subset_size else max(2, n_min // 2)
            mean, std = core.kid(fa.features, fb.features, subsets=kid_subsets, subset_size=size, seed=seed)
            out.append(("kid", mean, std, f"{kid_subsets} subsets of {size}, poly kernel (x.y/d+1)^3"))
        elif m == "is":
            if fa.logits is None:
                raise GanforgeError(is_available or "this extractor has no classifier logits; IS is unavailable")
            mean, std = core.inception_score(fa.logits, splits=is_splits, seed=seed)
            out.append(("is", mean, std, f"{is_splits} splits, on A only"))
        elif m == "pr":
            p, r = core.precision_recall(fb.features, fa.features, k=pr_k)
            out.append(("precision", p, None, f"k={pr_k}, A inside B's manifold"))
            out.append(("recall", r, None, f"k={pr_k}, B inside A's manifold"))
        elif m == "dc":
            d, c = core.density_coverage(fb.features, fa.features, k=5)
            out.append(("density", d, None, "k=5"))
            out.append(("coverage", c, None, "k=5"))
    return out


def _warn_small(metric: str, n: int) -> str | None:
    need = MIN_N.get(metric)
    if need and n < need:
        msg = f"{metric.upper()} with n={n} (< {need}): {MIN_N_HINT[metric]}"
        warnings.warn(msg, EvalWarning, stacklevel=4)
        return msg
    return None


def evaluate(source_a: str | Source, source_b: str | Source | None, *, metrics: str | Sequence[str] = ("fid",),
             extractor: str = "auto", n: int | None = None, n_b: int | None = None, seed: int = 0,
             resolution: int | None = None, kid_subsets: int = 100, kid_subset_size: int = 1000,
             pr_k: int = 3, is_splits: int = 10, truncation: float = 1.0,
             progress: bool = True, device: str | None = None, prompts: str | os.PathLike | None = None,
             clip_model: str | None = None) -> list[EvalResult]:
    """Compute ``metrics`` of A against reference B. ``n`` caps A (and B unless ``n_b``).
    ``device`` runs the feature network there ('auto': CUDA when available); features are fp32.
    A text run's samples are drawn from prompts (``prompts``: a file of them, else its training
    captions); ``rprecision`` and ``clip`` (CLIP score; ``clip_model`` ``local-dir:PATH`` or the
    default ViT-B-32) are for text runs and need no B. A metric that cannot be computed here (CLIP
    without its weights) is left out with a :class:`MetricSkipped` warning."""
    metrics = parse_metrics(metrics)
    feature_metrics = [m for m in metrics if m not in TEXT_METRICS]
    text_wanted = [m for m in metrics if m in TEXT_METRICS]
    spec_a = source_a.spec if isinstance(source_a, Source) else str(source_a)
    if text_wanted and not (source_a.prompts is not None if isinstance(source_a, Source) else _is_text(spec_a)):
        raise GanforgeError(f"--metrics {text_wanted[0]} is for text-to-image runs (trained with --text); "
                            f"{spec_a} is not one")
    if feature_metrics and source_b is None:
        raise GanforgeError(f"{', '.join(feature_metrics)} need a reference set B (e.g. mnist:train)")
    start = time.perf_counter()
    # The inputs first: a mistyped path is reported before minutes of feature-network set-up.
    a = source_a if isinstance(source_a, Source) else load_source(
        spec_a, n=n, seed=seed, resolution=resolution, truncation=truncation, progress=progress, prompts=prompts)
    results = _feature_results(feature_metrics, a, source_b, extractor=extractor, n=n_b or n, seed=seed,
                               resolution=resolution, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                               pr_k=pr_k, is_splits=is_splits, progress=progress, device=device,
                               start=start) if feature_metrics else []
    if text_wanted:
        from .texteval import text_metrics

        values, skipped = text_metrics(text_wanted, a.text_encoder, a.images, a.prompts, seed=seed,
                                       clip_model=clip_model, device=device)
        for metric, reason in skipped.items():
            warnings.warn(MetricSkipped(metric, reason), stacklevel=2)
        for metric, value, std, details, proto in values:
            results.append(EvalResult(metric, value, std, {
                "n_a": int(len(a.images)), "a": a.describe(), "protocol": proto, "seed": seed,
                "details": f"{details}; prompts from {a.info.get('prompts_from', '?')}, seed={seed}",
                "ganforge_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
                "seconds": round(time.perf_counter() - start, 2)}))
    return results


def _is_text(spec: str) -> bool:
    from .texteval import is_text_run

    return _is_run_dir(spec) and is_text_run(spec)


def reference_resolution(a: Source, resolution: int | None) -> int | None:
    """The size reference B is loaded at: ``resolution`` when given; for a run's samples (A) the
    run's own resolution, so that B is prepared as the run's training data was (a 32x32 MNIST run
    learnt digits resized 28 -> 32 bicubic; measured against native 28x28 digits, every sample is
    penalised for that resize: conditional MNIST 32x32 scored FID 14.3 instead of 7.5). The
    in-training evaluator (metrics/intraining.py) does the same. Otherwise None (native size)."""
    if resolution is None and a.kind == "run":
        return int(a.images.shape[-1])
    return resolution


def _feature_results(metrics: list[str], a: Source, source_b: str | Source, *, extractor: str, n: int | None,
                     seed: int, resolution: int | None, kid_subsets: int, kid_subset_size: int, pr_k: int,
                     is_splits: int, progress: bool, device: str | None, start: float) -> list[EvalResult]:
    """FID, KID, IS, PR, DC of loaded A against B (loaded here with ``n`` and seed + 1)."""
    spec_b = source_b.spec if isinstance(source_b, Source) else str(source_b)
    name = auto_extractor(spec_b, a.spec) if extractor == "auto" else extractor
    b = source_b if isinstance(source_b, Source) else load_source(
        spec_b, n=n, seed=seed + 1, resolution=reference_resolution(a, resolution), progress=progress)
    ext = get_extractor(name, progress=progress, device=device)
    if "is" in metrics and not ext.has_logits:
        raise GanforgeError(
            "IS needs the full Inception file with its 1008-way fc layer (weights 'inception-fid', "
            "pt_inception-2015-12-05-6726825d.pth); only the no-fc stand-in is available. Run "
            "`ganforge weights fetch inception-fid` or use --extractor mnist for MNIST-like data")
    fa = cached_features(a, ext, progress=progress)
    fb = cached_features(b, ext, progress=progress) if "is" not in metrics or len(metrics) > 1 else fa
    values = compute(metrics, fa, fb, seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                     pr_k=pr_k, is_splits=is_splits)
    common = {
        "n_a": int(len(a.images)), "n_b": int(len(b.images)),
        "a": a.describe(), "b": b.describe(),
        "extractor": ext.protocol(), "seed": seed,
        "ganforge_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "seconds": round(time.perf_counter() - start, 2),
    }
    results = []
    for metric, value, std, details in values:
        base = {"precision": "pr", "recall": "pr", "density": "dc", "coverage": "dc"}.get(metric, metric)
        n_used = min(common["n_a"], common["n_b"]) if base != "is" else common["n_a"]
        warning = _warn_small(base, n_used)
        proto = dict(common, details=details)
        if warning:
            proto["warning"] = warning
        results.append(EvalResult(metric, value, std, proto))
    return results


def write_json(results: list[EvalResult], path: str | os.PathLike, extra: dict | None = None) -> Path:
    """One JSON file: {"results": [...each number with its protocol...], **extra}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"results": [r.as_dict() for r in results], **(extra or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(path)
    return path


SampleFn = Callable[[int], torch.Tensor]

"""Membership inference against a trained GAN: how much does it leak which images it was trained on?

Two attacks, each scoring every query image (higher: "more likely a training image"), reported as
ROC AUC and TPR at 1 % FPR over a set of known members (the run's training images) and known
non-members (images of the same distribution it never saw):

- **LOGAN, white-box** (Hayes et al., PoPETs 2019): the run's own discriminator score D(x) (its
  raw logit, on the image at the run's resolution in [-1, 1], D in eval mode, no augmentation). An
  overfitted D scores its training images higher. A conditional run's D is given the image's label
  when the query set has labels, else the highest score over all classes.
- **GAN-Leaks, full black-box** (Chen et al., CCS 2020, §5.1): k generated samples (EMA
  generator, labels balanced over classes); the score is minus the distance from the query to its
  nearest sample (L2 on [0, 1] pixels at the run's resolution; for a conditional run with labelled
  queries, only samples of the query's class). **Calibrated** (§5.4): minus (that distance minus the
  query's nearest-neighbour distance under a *reference* model trained on other data of the same
  distribution), which removes how "typical" a query is. The reference is either another GAN run
  (the paper's G_r: k samples from it) or a real image set disjoint from both query sets, whose
  images stand in for a reference model's samples (an assumption stated in the result).

Small training sets trained long leak most; a differentially private run should give AUC near 0.5.
"""

from __future__ import annotations

import dataclasses
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import GanforgeError
from ..version import __version__

DEFAULT_K = 10_000
_SLICE = re.compile(r"^(?P<base>.+)\[(?P<start>\d*):(?P<stop>\d*)\]$")


@dataclass
class QuerySet:
    """uint8 N×C×R×R images at the run's resolution, labels (None: unlabelled) and their description."""

    images: torch.Tensor
    labels: torch.Tensor | None
    spec: str
    info: dict = field(default_factory=dict)


def parse_source(spec: str) -> tuple[str, int, int | None]:
    """``SRC`` or ``SRC[a:b]`` -> (SRC, a, b): images a..b-1 in the loader's order (the order
    ``train --max-images N`` takes its first N from, so ``mnist:train[:500]`` are the 500 images
    ``train --data mnist --max-images 500`` trained on)."""
    m = _SLICE.match(spec)
    if m is None or Path(spec).expanduser().exists():
        return spec, 0, None
    start, stop = int(m["start"] or 0), (int(m["stop"]) if m["stop"] else None)
    if stop is not None and stop <= start:
        raise GanforgeError(f"{spec}: empty slice [{start}:{stop}]")
    return m["base"], start, stop


def load_queries(spec: str, *, resolution: int, channels: int, n: int | None = None, seed: int = 0,
                 progress: bool = False) -> QuerySet:
    """The images of ``spec`` (a folder, a prepared dataset, a built-in split, each optionally
    ``[a:b]``) loaded exactly as training loads them (``ganforge.data.load_dataset`` at the run's
    resolution and channels), then ``n`` of them chosen by a seeded permutation when ``n`` is set."""
    from ..data import load_dataset

    base, start, stop = parse_source(spec)
    ds = load_dataset(base, resolution=resolution, channels=channels, max_images=stop, progress=progress)
    images, labels = ds.images[start:stop], ds.labels[start:stop]
    if len(images) == 0:
        raise GanforgeError(f"{spec}: no images (the source has {len(ds.images)})")
    subset = "all"
    if n is not None and n < len(images):
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        images, labels, subset = images[idx], labels[idx], f"{n} of {len(ds.images[start:stop])}, seeded randperm seed={seed}"
    info = {"source": spec, "description": ds.source, "n": int(len(images)), "slice": [start, stop],
            "subset": subset, "labelled": ds.num_classes >= 2}
    return QuerySet(images, labels if ds.num_classes >= 2 else None, spec, info)


def load_discriminator(run_dir: str | Path, *, checkpoint_name: str = "latest", device: str | torch.device = "cpu"):
    """(D in eval mode, the checkpoint's step) of a GAN run, built exactly as training builds it
    (:class:`ganforge.train.gan.GanTask`, so every option that shapes D applies) and loaded from the
    checkpoint. The global RNG is left as it was."""
    from ..config import GanConfig
    from ..nets import GanNetSpec
    from ..train import checkpoint
    from ..train.gan import GanTask
    from ..train.rundir import load_checkpoint, require_task

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise GanforgeError(f"{run_dir}: not a run directory (the white-box attack needs the run's discriminator)")
    meta = require_task(run_dir, "gan")
    cfg = GanConfig.load(run_dir / "config.json")
    cfg = dataclasses.replace(cfg, compile=False)  # D is only run, never trained, here
    spec = GanNetSpec(**meta["spec"])
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    with torch.random.fork_rng(devices=[]):
        task = GanTask(cfg, spec, torch.device(device))
    checkpoint.restore_modules(task.modules(), tensors, path)
    if getattr(task, "progressive", False):
        task._enter_stage(int(state["step"]))  # progan: D at the checkpoint's stage
    return task.D.eval(), int(state["step"])


@torch.no_grad()
def logan_scores(D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None, num_classes: int,
                 *, batch_size: int = 256) -> np.ndarray:
    """LOGAN's white-box score: D's logit for each uint8 image (higher: more member-like)."""
    device = next(D.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float().div(127.5).sub(1)
        if not num_classes:
            out.append(D(x, None).float().reshape(len(x)))
        elif labels is not None:
            out.append(D(x, labels[i:i + batch_size].to(device)).float().reshape(len(x)))
        else:  # unlabelled queries to a conditional D: the best score over the classes
            per_class = [D(x, torch.full((len(x),), c, device=device, dtype=torch.long)).float().reshape(len(x))
                         for c in range(num_classes)]
            out.append(torch.stack(per_class).amax(0))
    return torch.cat(out).cpu().double().numpy()


@torch.no_grad()
def nearest_distances(queries: torch.Tensor, samples: torch.Tensor, query_labels: torch.Tensor | None = None,
                      sample_labels: torch.Tensor | None = None, *, batch_size: int = 256) -> np.ndarray:
    """For each query, the L2 distance (on [0, 1] pixels; uint8 inputs are scaled) to its nearest
    sample; with both label tensors, only samples of the query's own class count."""
    q = _flat(queries)
    s = _flat(samples)
    s_sq = s.square().sum(1)
    out = []
    for i in range(0, len(q), batch_size):
        qb = q[i:i + batch_size]
        d2 = (qb.square().sum(1, keepdim=True) - 2 * qb @ s.T + s_sq[None]).clamp_min(0)
        if query_labels is not None and sample_labels is not None:
            d2 = d2.masked_fill(query_labels[i:i + batch_size, None] != sample_labels[None], float("inf"))
        out.append(d2.min(1).values.sqrt())
    d = torch.cat(out).cpu().double().numpy()
    if not np.isfinite(d).all():
        raise GanforgeError("GAN-Leaks: some query classes have no generated sample; raise --k")
    return d


def _flat(x: torch.Tensor) -> torch.Tensor:
    x = x.double() / 255.0 if x.dtype == torch.uint8 else x.double()
    return x.reshape(len(x), -1)


def roc(member_scores: np.ndarray, non_member_scores: np.ndarray, *, fpr_at: float = 0.01) -> dict:
    """ROC AUC, TPR at ``fpr_at`` FPR (the highest TPR whose FPR is at most it) and the curve
    (scikit-learn's roc_curve / roc_auc_score; members are the positive class)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    s = np.concatenate([member_scores, non_member_scores])
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= fpr_at + 1e-12
    return {"auc": float(roc_auc_score(y, s)), "tpr_at_1pct_fpr": float(tpr[ok].max()) if ok.any() else 0.0,
            "fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr]}


def sample_generator(gen, k: int, seed: int, *, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``k`` uint8 samples (as a saved PNG holds them) of a generator-like (``num_classes``,
    ``sample(n, labels=, seed=)``), labels balanced over classes (None when unconditional)."""
    classes = int(getattr(gen, "num_classes", 0) or 0)
    labels = torch.arange(k) % classes if classes else None
    chunks = []
    for i in range(0, k, batch):
        m = min(batch, k - i)
        chunks.append(gen.sample(m, labels=None if labels is None else labels[i:i + m], seed=seed + i))
    return torch.cat(chunks).clamp(0, 1).mul(255).round().to(torch.uint8), labels


def ganleaks(members: QuerySet, non_members: QuerySet, samples: torch.Tensor, sample_labels: torch.Tensor | None,
             reference: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> dict:
    """GAN-Leaks full black-box scores and ROC: ``{"ganleaks": roc, "ganleaks_calibrated": roc or
    absent}`` from the generated ``samples`` (and a reference model's samples or images)."""
    use_labels = sample_labels is not None and members.labels is not None and non_members.labels is not None

    def dist(q: QuerySet, s: torch.Tensor, s_labels) -> np.ndarray:
        return nearest_distances(q.images, s, q.labels if use_labels and s_labels is not None else None,
                                 s_labels if use_labels else None)

    d_m, d_n = dist(members, samples, sample_labels), dist(non_members, samples, sample_labels)
    out = {"ganleaks": roc(-d_m, -d_n)}
    out["ganleaks"]["median_distance"] = {"members": float(np.median(d_m)), "non_members": float(np.median(d_n))}
    if reference is not None:
        r_images, r_labels = reference
        r_m, r_n = dist(members, r_images, r_labels), dist(non_members, r_images, r_labels)
        out["ganleaks_calibrated"] = roc(-(d_m - r_m), -(d_n - r_n))
    return out


def audit(run: str | Path, members: str, non_members: str, *, k: int = DEFAULT_K, reference: str | None = None,
          n: int | None = None, seed: int = 0, checkpoint_name: str = "latest", device: str = "auto",
          progress: bool = False, generator=None, discriminator: torch.nn.Module | None = None) -> dict:
    """Both attacks on a GAN run: ``members`` are (some of) its training images, ``non_members``
    images of the same distribution it never saw, ``reference`` (optional, for the calibrated
    GAN-Leaks) another run or an image set disjoint from both. ``n`` caps each query set (seeded).
    ``generator`` / ``discriminator`` replace the run's own (tests, stand-ins); without a
    discriminator and with no run directory the white-box attack is skipped."""
    from ..device import resolve_device

    start = time.perf_counter()
    dev = resolve_device(device)
    if generator is None:
        from ..sample import load_generator

        generator = load_generator(run, checkpoint_name=checkpoint_name).to(dev, "fp32")
    res, ch = int(generator.resolution), int(generator.channels)
    classes = int(getattr(generator, "num_classes", 0) or 0)
    mem = load_queries(members, resolution=res, channels=ch, n=n, seed=seed, progress=progress)
    non = load_queries(non_members, resolution=res, channels=ch, n=n, seed=seed + 1, progress=progress)
    if classes and mem.labels is not None and int(mem.labels.max()) >= classes:
        raise GanforgeError(f"{members}: labels up to {int(mem.labels.max())}, the run has {classes} classes")
    results: dict = {}
    step = int(getattr(generator, "step", -1))
    if discriminator is None and run is not None and (Path(run) / "run.json").is_file():
        discriminator, step = load_discriminator(run, checkpoint_name=checkpoint_name, device=dev)
    if discriminator is not None:
        results["logan"] = roc(logan_scores(discriminator, mem.images, mem.labels, classes),
                               logan_scores(discriminator, non.images, non.labels, classes))
    samples, s_labels = sample_generator(generator, k, seed=seed + 1_000_003)
    ref, ref_info = None, None
    if reference is not None:
        ref, ref_info = _reference(reference, k=k, res=res, ch=ch, seed=seed, device=dev, progress=progress)
    results.update(ganleaks(mem, non, samples, s_labels, ref))
    protocol = {
        "run": None if run is None else str(run), "step": step, "members": mem.info, "non_members": non.info,
        "resolution": res, "channels": ch, "num_classes": classes, "seed": seed,
        "logan": "white-box: the run's D logit on the image in [-1, 1], D in eval mode, no augmentation; "
                 + ("the image's label" if mem.labels is not None else "max over classes") if classes else
                 "white-box: the run's D logit on the image in [-1, 1], D in eval mode, no augmentation",
        "ganleaks": f"full black-box: minus the L2 distance ([0, 1] pixels) to the nearest of k={k} EMA samples "
                    "(uint8-quantised, labels balanced)" + (", same class only" if classes and mem.labels is not None else ""),
        "ganleaks_calibrated": ref_info, "tpr_at": "1% FPR (highest TPR with FPR <= 0.01)",
        "roc": "sklearn.metrics roc_curve / roc_auc_score, members positive",
        "ganforge_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
    }
    return {"attacks": results, "protocol": protocol, "seconds": round(time.perf_counter() - start, 2)}


def _reference(spec: str, *, k: int, res: int, ch: int, seed: int, device, progress: bool):
    if (Path(spec) / "run.json").is_file():
        from ..sample import load_generator

        ref_gen = load_generator(spec).to(device, "fp32")
        if (int(ref_gen.resolution), int(ref_gen.channels)) != (res, ch):
            raise GanforgeError(f"--reference {spec}: {ref_gen.resolution}px/{ref_gen.channels}ch, the run {res}px/{ch}ch")
        images, labels = sample_generator(ref_gen, k, seed=seed + 2_000_003)
        return (images, labels), f"reference generator {spec} (step {ref_gen.step}): k={k} samples, distance subtracted"
    q = load_queries(spec, resolution=res, channels=ch, progress=progress)
    return (q.images, q.labels), (f"reference image set {spec} ({len(q.images)} images, disjoint from both query "
                                  "sets) standing in for a reference model's samples; distance subtracted")


def plot_roc(result: dict, path: str | Path, title: str = "membership inference") -> Path:
    """Every attack's ROC curve on one plot with the diagonal (chance), AUC in the legend."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state is touched

    fig = Figure(figsize=(4.8, 4.4), dpi=120)
    ax = fig.add_subplot()
    names = {"logan": "LOGAN (white-box D)", "ganleaks": "GAN-Leaks (black-box)",
             "ganleaks_calibrated": "GAN-Leaks calibrated"}
    for key, r in result["attacks"].items():
        ax.plot(r["fpr"], r["tpr"], label=f"{names.get(key, key)}: AUC {r['auc']:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def save_to_run(run_dir: str | Path, result: dict) -> tuple[Path, Path]:
    """The run's latest audit: ``RUN/audit/audit.json`` and ``RUN/audit/roc.png`` (both replaced
    atomically), then the run page (``samples/index.html``) rewritten with its audit section."""
    import json

    from ..train.checkpoint import write_text_atomic
    from ..train.loop import write_samples_page

    folder = Path(run_dir) / "audit"
    folder.mkdir(parents=True, exist_ok=True)
    png = plot_roc(result, folder / "roc.png", title=f"membership inference: {Path(run_dir).name}")
    target = folder / "audit.json"
    write_text_atomic(target, json.dumps(result, indent=2, default=str) + "\n")
    if (Path(run_dir) / "samples").is_dir():
        write_samples_page(Path(run_dir))
    return target, png

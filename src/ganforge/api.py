"""Public Python API for GAN training: ``ganforge.train_gan(GanConfig(...), out="runs/x")``."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .config import GanConfig
from .errors import GanforgeError

RUN_FILE = "run.json"  # kept for callers; defined in train.run
CONFIG_FILE = "config.json"
# Options whose default ("auto") depends on the run (architecture, batch): run.json says what they were.
RESOLVED_KEYS = ("d_norm", "d_mbstd", "ema_kimg", "ema_rampup", "watchdog", "g_upsample", "n_critic")


def train_gan(config: GanConfig | None = None, *, out: str | Path, resume: str = "auto",
              on_finish: Callable[[Any], None] | None = None, device: str = "auto",
              handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train a GAN into the run directory ``out``; returns a summary (steps, timings, paths).

    ``resume``: 'auto' continues from the newest good checkpoint in ``out`` (exactly: same
    weights as an uninterrupted run), 'never' refuses to reuse a run directory. ``device``:
    'auto' (Accelerate's choice), 'cpu' or 'cuda' (see :func:`ganforge.device.accelerate_cpu_flag`).
    ``handle_signals`` (the CLI sets it): SIGINT/SIGTERM finish the step, save a checkpoint and
    stop; by default the caller's (a test's, a server's) signal handling is left alone.

    The run itself (resume check, run files, loop, summary) is :func:`ganforge.train.run.run_task`,
    shared with every other task; this function only builds the GAN and its data."""
    from .train.run import Prepared, run_task

    cfg = replace(config or GanConfig(), **overrides)
    if cfg.init:  # transfer learning: arch, resolution, z_dim, ... from the source network
        from .published.finetune import apply_init

        cfg = apply_init(cfg)
    stored = _stored_config(Path(out), resume)
    cfg = cfg.with_text_defaults(stored)
    if stored is not None:  # a run being resumed keeps its behaviour for options added since it was made
        cfg = cfg.adopt_stored(stored)
    cfg.validate()

    def prepare(accelerator) -> Prepared:
        if cfg.text:  # captions condition G and D (train/textgan.py)
            from .train.checkpoint import list_checkpoints
            from .train.textgan import prepare_text_run

            resuming = resume == "auto" and bool(list_checkpoints(Path(out) / "checkpoints"))
            return prepare_text_run(cfg, accelerator, Path(out), resuming, _make_eval_fn)
        from .data import load_dataset
        from .data.prepared import open_training_data
        from .nets import GanNetSpec
        from .train.batches import MemmapBatches
        from .train.gan import GanTask
        from .train.loop import TensorBatches

        t0 = time.perf_counter()
        progress = cfg.progress and accelerator.is_local_main_process
        # A prepared dataset streams from disk; a raw folder is prepared into the cache first (once
        # per machine, reused while its files are unchanged); built-in datasets stay in memory.
        # Both give the same batches as the in-memory path, so resume stays bit-exact.
        first = accelerator.local_main_process_first if accelerator.num_processes > 1 else None
        dataset = open_training_data(cfg.data, resolution=cfg.resolution, channels=cfg.channels,
                                     max_images=cfg.max_images, progress=progress, first=first)
        if dataset is None:
            dataset = load_dataset(cfg.data, resolution=cfg.resolution, channels=cfg.channels,
                                   max_images=cfg.max_images, progress=cfg.progress and accelerator.is_main_process)
            batches = TensorBatches(dataset.images, dataset.labels, cfg.batch_size, cfg.seed, cfg.hflip)
        else:
            batches = MemmapBatches(dataset, dataset.labels, cfg.batch_size, cfg.seed, cfg.hflip)
        t_data = time.perf_counter() - t0
        if dataset.skipped:
            warnings.warn(f"skipped {len(dataset.skipped)} unreadable image(s), e.g. {dataset.skipped[0]}", stacklevel=4)
        if cfg.conditional and dataset.num_classes < 2:
            raise GanforgeError(f"--conditional needs labelled data (2+ classes); {dataset.source} has {dataset.num_classes}")
        spec = GanNetSpec(resolution=cfg.resolution, channels=dataset.channels, z_dim=cfg.z_dim,
                          num_classes=dataset.num_classes if cfg.conditional else 0, width=cfg.width,
                          resize_conv=cfg.resize_conv)
        private = _private_training(cfg, accelerator, dataset) if cfg.dp_epsilon > 0 else {}
        if private:
            batches = private["batches"]
        task = GanTask(cfg, spec, accelerator.device, dp_plan=private.get("plan"))
        marked = _fingerprinted(cfg, accelerator, dataset, Path(out)) if cfg.fingerprint else {}
        if marked:
            batches = marked["batches_of"](batches)
        prepared = Prepared(
            task=task,
            batches=batches,
            loop_config=cfg.loop_config(),
            eval_fn=_make_eval_fn(cfg, task, spec) if cfg.eval_every else None,
            curve_groups={"losses": ["loss_G", "loss_D", "mode_seeking"], "D outputs": ["D_real", "D_fake"],
                          "augment p": ["augment_p"], "eval": ["eval"]},
            run_info={"arch": cfg.arch, "spec": {k: v for k, v in spec.__dict__.items() if k != "text_dim"},
                      "class_names": dataset.class_names,
                      "optimizer": {**{k: getattr(task.cfg, k) for k in ("lr_g", "lr_d", "beta1", "beta2", "r1_gamma")},
                                    "r1_every": task.cfg.r1_interval},
                      "resolved": {k: getattr(task.cfg, k) for k in RESOLVED_KEYS},  # the autos as used
                      "data_source": dataset.source, "skipped_files": len(dataset.skipped),
                      **_init_info(cfg), **marked.get("run_info", {})},
            summary={"data_seconds": t_data, "data_source": dataset.source},
        )
        if marked:
            prepared.final_summary = marked["final_summary"](task)
        if private:
            from .train.dp import attach_to_run

            attach_to_run(prepared, task)
        return prepared

    return run_task("gan", cfg, out, prepare, resumable=GanConfig.RESUMABLE_CHANGES, resume=resume,
                    device=device, handle_signals=handle_signals, on_finish=on_finish)


def _private_training(cfg: GanConfig, accelerator, dataset) -> dict:
    """A DP run's plan (noise for the planned D steps) and its Poisson batches (train/dp.py)."""
    import sys

    from .train import dp

    if accelerator.num_processes > 1:
        raise GanforgeError("--dp-epsilon runs in one process (the accountant and Poisson sampling are per run); "
                            "launch it without accelerate/torchrun")
    notes = dp.reroutes(cfg)
    if notes and accelerator.is_main_process:
        print("differential privacy: " + "; ".join(notes), file=sys.stderr)
    plan = dp.plan(cfg.resolved(), len(dataset.labels))
    images = dataset.images if getattr(dataset, "images", None) is not None else dataset
    return {"plan": plan, "batches": dp.PoissonBatches(images, dataset.labels, plan.sample_rate, cfg.seed, cfg.hflip)}


def _fingerprinted(cfg: GanConfig, accelerator, dataset, out: Path) -> dict:
    """``--fingerprint``: the run's encoder/decoder pair (trained on the training images by the main
    process and kept in the run directory, or the run's own when resuming), a wrapper that
    fingerprints every batch, run.json's record and a summary field: the code's bit accuracy on
    the EMA generator's samples."""
    import torch

    from . import fingerprint
    from .fingerprint.pair import FILE
    from .fingerprint.train import DEFAULT_STEPS
    from .train.checkpoint import write_text_atomic

    path, check_path = out / FILE, out / (FILE + ".json")
    code = fingerprint.parse_code(cfg.fingerprint)

    def stored() -> "fingerprint.Fingerprint | None":  # the run's own pair (resuming), if it is for these options
        if not path.is_file():
            return None
        fp = fingerprint.load(path)
        return fp if fp.code.tolist() == code and fp.encoder.strength == cfg.fingerprint_strength else None

    with accelerator.main_process_first():
        fp = stored()
        if fp is None:
            if getattr(dataset, "images", None) is not None:
                images = dataset.images
            else:  # a prepared dataset on disk: the pair learns from its first images
                images = torch.from_numpy(dataset.read(list(range(min(len(dataset.labels), 20000)))))
            fp, check = fingerprint.train_fingerprint(images, code, steps=cfg.fingerprint_steps or DEFAULT_STEPS,
                                                      strength=cfg.fingerprint_strength, seed=cfg.seed,
                                                      progress=cfg.progress and accelerator.is_main_process)
            if accelerator.is_main_process:
                out.mkdir(parents=True, exist_ok=True)
                fp.save(path)
                write_text_atomic(check_path, json.dumps(check, indent=2) + "\n")
    try:
        check = json.loads(check_path.read_text())
    except (OSError, ValueError):
        check = {}

    def final_summary(task):
        def measure(loop) -> dict:
            task.settle()
            g = torch.Generator().manual_seed(cfg.seed + 4242)
            with torch.no_grad():
                z = torch.randn(512, task.spec.z_dim, generator=g).to(task.fixed_z.device)
                y = (torch.arange(512) % task.spec.num_classes).to(z.device) if task.conditional else None
                samples = task.G_ema(z, y).float().cpu()
            return {"fingerprint": {**check, "code": fp.code_text, "samples_bit_accuracy": round(fp.bit_accuracy(samples), 4)}}
        return measure

    return {"batches_of": lambda batches: fingerprint.FingerprintedBatches(batches, fp),
            "run_info": {"fingerprint": {"code": fp.code_text, "file": FILE}}, "final_summary": final_summary}


def _init_info(cfg: GanConfig) -> dict:
    """run.json fields of a run started from --init (its source; the official arch's kwargs)."""
    if not cfg.init:
        return {}
    from .published.finetune import run_info

    return run_info(cfg)


def _stored_config(out: Path, resume: str) -> GanConfig | None:
    """The stored options of the run being resumed in ``out`` (None: nothing to resume, or
    unreadable, which the resume check reports)."""
    from .train import checkpoint

    stored = out / CONFIG_FILE
    if resume != "auto" or not stored.is_file() or not checkpoint.list_checkpoints(out / "checkpoints"):
        return None
    try:
        return GanConfig.load(stored)
    except GanforgeError:
        return None


def _make_eval_fn(cfg: GanConfig, task, spec):
    """In-training metric (FID/KID) on EMA samples against the training data's reference stats."""
    import torch

    from .metrics import InTrainingEvaluator

    evaluator = InTrainingEvaluator(reference=cfg.data, metric=cfg.eval_metric, n_samples=cfg.eval_n,
                                    resolution=cfg.resolution, channels=spec.channels)
    gen = torch.Generator().manual_seed(cfg.seed + 999)

    @torch.no_grad()
    def sample_fn(n: int) -> torch.Tensor:
        device = task.fixed_z.device
        z = torch.randn(n, spec.z_dim, generator=gen).to(device)
        y = task.eval_condition(n, gen)  # labels, or a text run's captions of random training images
        return task.G_ema(z, y).float().add(1).div(2).clamp(0, 1).cpu()

    def eval_fn() -> float:
        task.settle()  # G_ema's own BatchNorm statistics
        gen.manual_seed(cfg.seed + 999)  # the same latents at every evaluation
        return evaluator(sample_fn)

    return eval_fn

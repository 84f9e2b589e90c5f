"""The generic training loop: time, devices, precision, distributed sync, NaN guard,
checkpoints, logging and evaluation. What is trained lives in a task (see ``task.py``).

Distributed training uses Hugging Face Accelerate for the process group and device placement
(``accelerate launch`` or ``torchrun``); gradients are averaged with one all-reduce per optimiser
step. This (rather than wrapping models in DDP) keeps GAN patterns — several forwards of D per
step, R1 and gradient-penalty double backward, G steps through a frozen D — correct by design.
"""

from __future__ import annotations

import math
import signal
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from ..device import resolve_precision
from ..errors import GanforgeError
from ..imageio import save_image
from ..provenance import Provenance
from . import checkpoint
from .batches import BatchSource, TensorBatches  # noqa: F401 (TensorBatches re-exported)
from .context import RunContext
from .logbook import Logbook, ScalarMeans, plot_curves
from .options import SCHEDULES, LoopConfig, LoopOptions, lr_factor  # noqa: F401 (re-exported: the loop's options)
from .task import Task


def make_accelerator(cpu: bool | None = None):
    """One Accelerate object per process; it owns the device and the process group."""
    from accelerate import Accelerator

    if cpu is None:
        cpu = not torch.cuda.is_available()
    return Accelerator(cpu=cpu)


class TrainingLoop:
    """Runs ``task`` for ``cfg.steps`` steps in ``run_dir``; resumes from its checkpoints."""

    def __init__(self, task: Task, batches: BatchSource, cfg: LoopOptions, run_dir: Path, accelerator,
                 eval_fn: Callable[[], float] | None = None, curve_groups: dict[str, list[str]] | None = None) -> None:
        cfg.validate()
        self.task, self.batches, self.cfg, self.run_dir = task, batches, cfg, Path(run_dir)
        self.accelerator = accelerator
        self.device = accelerator.device
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.is_main = accelerator.is_main_process
        self.eval_fn, self.curve_groups = eval_fn, curve_groups
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed * 7919 + self.rank)
        self.optimizers = task.optimizers()
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.lr_schedule, s, cfg.lr_decay_steps or cfg.steps))
            for name, opt in self.optimizers.items()
        }
        self.precision = resolve_precision(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" and self.device.type == "cuda" else None
        if self.precision == "fp16" and self.device.type != "cuda":
            raise GanforgeError("--precision fp16 needs a CUDA GPU; use bf16 on the CPU")
        self.step, self.batch_index, self.images_seen = 0, 0, 0
        self.bad_steps, self.bad_streak, self.reloads = 0, 0, 0
        # skip policy, no GradScaler: non-finite updates are dropped on the device and counted there
        # (bad steps, the current streak, its longest run), read at log/checkpoint intervals
        self.device_nan_guard = cfg.nan_policy == "skip" and self.scaler is None
        self._bad_dev = [torch.zeros((), device=self.device) for _ in range(3)]  # count, streak, longest streak
        self.last_logged: dict[str, Any] = {}  # the scalars of the latest log line (interval means)
        self.reload_streak = 0  # reloads since the last step checkpoint was written
        self._logbook: Logbook | None = None
        self.best: float | None = None
        self.ckpt_root = self.run_dir / "checkpoints"
        self._stop_requested = False
        self.stop_signal: str | None = None  # "SIGTERM"/"SIGINT" when a signal stopped the run
        self._broadcast_initial_state()

    # --- distributed helpers -----------------------------------------------------------------
    def _distributed(self) -> bool:
        return self.world > 1 and dist.is_available() and dist.is_initialized()

    def _broadcast_initial_state(self) -> None:
        if self._distributed():
            for module in self.task.modules().values():
                for tensor in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(tensor.data, src=0)

    def all_finite(self, values: torch.Tensor) -> bool:
        flag = torch.isfinite(values).all().float().reshape(1)
        if self._distributed():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def sync_gradients(self, params: list[torch.Tensor]) -> None:
        if not self._distributed():
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    # --- state -------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        """This process's random streams: the run's generator, torch's CPU RNG, CUDA's if used."""
        out = {"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            out["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return out

    def _gather_rng_states(self) -> list[dict[str, torch.Tensor]]:
        """Every rank's random streams, in rank order (a collective: all ranks call it)."""
        mine = self._rng_state()
        if not self._distributed():
            return [mine]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, mine)
        return gathered

    def state(self, rng_per_rank: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "rng_per_rank": rng_per_rank if rng_per_rank is not None else [self._rng_state()],
            "batch_index": self.batch_index,
            "images_seen": self.images_seen,
            "bad_steps": self.bad_steps,
            "reloads": self.reloads,
            "reload_streak": self.reload_streak,
            "best": self.best if self.best is not None else float("nan"),
            "task": self.task.extra_state(),
            "loop_config": asdict(self.cfg),
        }

    def save_checkpoint(self, name: str | None = None) -> Path | None:
        self.settle_bad_steps()  # the checkpoint's bad_steps count
        path = None
        if name is None:  # a new point to go back to: reloads start counting again
            self.reload_streak = 0
        rng = self._gather_rng_states()  # every rank's streams, so each resumes its own
        getattr(self.task, "settle", lambda: None)()  # e.g. an EMA G's own BatchNorm statistics
        if self.is_main:
            path = checkpoint.save(self.ckpt_root, self.step, self.task.modules(), self.state(rng),
                                   keep=self.cfg.keep_ckpts, name=name)
        if self._distributed():
            dist.barrier()
        return path

    def restore(self, tensors: dict[str, torch.Tensor], state: dict[str, Any], source: Path) -> None:
        checkpoint.restore_modules(self.task.modules(), tensors, source)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        per_rank = state.get("rng_per_rank") or []
        if self.rank < len(per_rank):  # this rank's own streams
            mine = per_rank[self.rank]
            self.generator.set_state(mine["generator"])
            torch.set_rng_state(mine["torch_rng"])
            if "cuda_rng" in mine and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda_rng"], self.device)
        else:  # an older checkpoint (rank 0's streams only) or more processes than were saved
            if self.rank == 0:
                self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.batch_index, self.images_seen = int(state["batch_index"]), int(state["images_seen"])
        self.bad_steps, self.reloads = int(state["bad_steps"]), int(state["reloads"])
        self.reload_streak = int(state.get("reload_streak", 0))
        best = float(state.get("best", float("nan")))
        self.best = None if math.isnan(best) else best
        self.task.load_extra_state(state["task"])

    def resume(self) -> int:
        """Continue from the newest loadable checkpoint; returns the step resumed from (0: none)."""
        checkpoint.clean_temporaries(self.ckpt_root) if self.is_main else None
        found = checkpoint.load_latest(self.ckpt_root)
        if found is None:
            return 0
        path, tensors, state = found
        self.restore(tensors, state, path)
        return self.step

    # --- the loop ----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:  # finish the step, checkpoint, stop
        self._stop_requested = True
        self.stop_signal = signal.Signals(signum).name

    def _stop_agreed(self) -> bool:
        """Whether any process was asked to stop: one preempted rank stops them all together (MAX
        all-reduce every step), so no rank waits forever in a collective the others left."""
        if not self._distributed():
            return self._stop_requested
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._stop_requested = bool(flag.item())
        return self._stop_requested

    def run(self, handle_signals: bool = False) -> dict[str, Any]:
        """Train to ``cfg.steps``. ``handle_signals`` (the CLI sets it): SIGINT/SIGTERM finish the
        step, save a checkpoint and stop; a library caller keeps its own signal dispositions."""
        cfg = self.cfg
        logbook = Logbook(self.run_dir, resume_step=self.step, tensorboard=cfg.tensorboard) if self.is_main else None
        self._logbook = logbook
        ctx = RunContext(self)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} \
            if handle_signals and _main_thread() else {}
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (cfg.progress and self.is_main),
                   desc="train", unit="step", dynamic_ncols=True)
        t_start, seen_start, last_saved = time.perf_counter(), self.images_seen, -1
        t_log, seen_log = t_start, self.images_seen
        means = ScalarMeans()  # the task's scalars, averaged on the device over a log interval
        try:
            while self.step < cfg.steps and not self._stop_agreed():
                ctx.begin_iteration(self.step)
                scalars = self.task.step(ctx)
                ctx.end_iteration()
                if ctx.bad_flag is not None:
                    self._count_bad_on_device(ctx.bad_flag)
                means.add(scalars)
                self.step += 1
                with warnings.catch_warnings():  # a skipped (non-finite) update is not a misuse
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    for sched in self.schedulers.values():
                        sched.step()
                if ctx.bad_in_step:  # a loss-scale overflow is counted, but is no reason to reload
                    # (host-side guard: --nan-policy reload, a GradScaler or an unfused optimiser)
                    if self._handle_bad_step(allow_reload=not ctx.overflow_only):  # reloaded
                        bar.n = self.step
                        continue
                else:
                    self.bad_streak = 0
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.settle_bad_steps()
                    logged = means.pop()  # the one host read of the interval's scalars
                    self.last_logged = logged
                if logbook and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    now = time.perf_counter()
                    rate = (self.images_seen - seen_log) / max(now - t_log, 1e-9)
                    t_log, seen_log = now, self.images_seen
                    lr = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
                    logbook.log(self.step, {**logged, **lr, "img_per_s": rate, "bad_steps": self.bad_steps})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(logged.items())[:4]}, refresh=False)
                if self.step % cfg.log_every == 0:  # not the last step's extra log: a stop changes nothing
                    self._after_log(logged, logbook)  # the interval's means
                if self.is_main and cfg.sample_every and (self.step % cfg.sample_every == 0 or self.step == cfg.steps):
                    self._snapshot(ctx)
                if self.eval_fn and cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._evaluate(logbook)
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save_checkpoint()
                    last_saved = self.step
            if last_saved != self.step:
                self.save_checkpoint()
        finally:
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if logbook:
                failing = sys.exc_info()[1] is not None
                try:
                    logbook.close()
                    plot_curves(logbook.path, self.run_dir / "loss_curves.png", self.curve_groups)
                except Exception:
                    if not failing:  # a full disk: the first error is the one to report
                        raise
        elapsed = time.perf_counter() - t_start
        return {"steps": self.step, "seconds": elapsed, "precision": self.precision, "stopped_early": self._stop_requested,
                "stopped_by": self.stop_signal,
                "images_per_s": (self.images_seen - seen_start) / max(elapsed, 1e-9),
                "bad_steps": self.bad_steps, "reloads": self.reloads, "best": self.best}

    def _count_bad_on_device(self, flag: torch.Tensor) -> None:
        """Add one iteration's device-side flag (1.0: an update was dropped) to the counters."""
        count, streak, longest = self._bad_dev
        count.add_(flag)
        streak.add_(1.0).mul_(flag)  # +1 on a bad step, 0 on a good one
        torch.maximum(longest, streak, out=longest)

    def settle_bad_steps(self) -> None:
        """Read the device-side bad-step counters (one host sync) into ``bad_steps``/``bad_streak``;
        stop with the 'diverged' error if a streak reached ``max_bad_steps`` since the last read.
        Under ``--nan-policy skip`` this is when the streak limit is checked: at log intervals,
        checkpoints and the end of the run (not at the very step the limit was reached)."""
        if not self.device_nan_guard:
            return
        count, streak, longest = (int(v) for v in torch.stack(self._bad_dev).tolist())
        self._bad_dev[0].zero_()
        self._bad_dev[2].fill_(float(streak))
        self.bad_steps += count
        self.bad_streak = streak
        if longest >= self.cfg.max_bad_steps:
            raise GanforgeError(
                f"training diverged: {longest} steps in a row had non-finite losses or gradients "
                f"(last good checkpoint kept in {self.ckpt_root}); lower the learning rate or use fp32")

    def _after_log(self, scalars: dict[str, Any], logbook: Logbook | None) -> None:
        """The task's hook at a log step (e.g. GanTask's lost-game watchdog): it reads the logged
        values (the main process's, on every rank, so all decide alike) and may ask for a learning
        rate change, applied here to the optimiser and its schedule's base (both checkpointed)."""
        hook = getattr(self.task, "after_log", None)
        if hook is None:
            return
        values = {k: float(v) for k, v in scalars.items() if isinstance(v, (int, float, torch.Tensor))}
        if self._distributed():
            box = [values]
            dist.broadcast_object_list(box, src=0)
            values = box[0]
        action = hook(self.step, values)
        if action is None:
            return
        for name, factor in action.lr_scale.items():
            sched = self.schedulers[name]
            sched.base_lrs = [lr * factor for lr in sched.base_lrs]
            for group in self.optimizers[name].param_groups:
                group["lr"] *= factor
        if self.is_main:
            print(action.message, file=sys.stderr)
        if logbook:
            logbook.log(self.step, {"watchdog": action.message})

    def _handle_bad_step(self, allow_reload: bool = True) -> bool:
        """Count a non-finite step; returns True when it went back to a checkpoint."""
        self.bad_steps += 1
        self.bad_streak += 1
        if self.bad_streak >= self.cfg.max_bad_steps:
            raise GanforgeError(
                f"training diverged: {self.bad_streak} steps in a row had non-finite losses or gradients "
                f"(last good checkpoint kept in {self.ckpt_root}); lower the learning rate or use fp32")
        if self.cfg.nan_policy == "reload" and allow_reload:
            found = checkpoint.load_latest(self.ckpt_root)
            if found is not None:
                self._reload(*found)
                return True
        return False

    def _reload(self, path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Go back to the last checkpoint, but not into the same failure: replaying it exactly (same
        RNG, same batches) would hit a deterministic NaN again, forever. The data stream continues
        after the offending batch instead of rewinding, and the run's generator is reseeded from
        (seed, reload count, rank): deterministic, so a resumed run still repeats this one. Reloads
        that do not get past the checkpoint are bounded by ``max_reloads``."""
        if self.reload_streak >= self.cfg.max_reloads:
            raise GanforgeError(
                f"training diverged: still non-finite after {self.reload_streak} reload(s) of {path.name} "
                f"(step {self.step}, {self.bad_steps} bad steps in all); lower the learning rate, use fp32, "
                f"or check the data")
        keep = (self.bad_steps, self.reloads + 1, self.reload_streak + 1, self.batch_index, self.images_seen)
        self.restore(tensors, state, path)
        self.bad_steps, self.reloads, self.reload_streak, self.batch_index, self.images_seen = keep
        self.bad_streak = 0
        self.generator.manual_seed((self.cfg.seed * 7919 + self.rank) * 1_000_003 + 7 * self.reloads + 1)
        if self._logbook is not None:  # the log follows the weights back
            self._logbook._truncate(self.step)
        warnings.warn(f"non-finite step: reloaded {path.name} (reload {self.reload_streak} of at most "
                      f"{self.cfg.max_reloads}); skipping the offending batch(es)", stacklevel=3)

    def _snapshot(self, ctx: RunContext) -> None:
        grid = self.task.snapshot(ctx)
        prov = Provenance("train-samples", self.run_dir.name, None, {"step": self.step}, watermark=True)
        path = save_image(grid, self.run_dir / "samples" / f"step-{self.step:07d}.png", provenance=prov)
        save_image(grid, self.run_dir / "samples" / "latest.png", provenance=prov)
        write_samples_page(self.run_dir, getattr(self.task, "snapshot_columns", None),
                           getattr(self.task, "snapshot_rows", None))
        return path

    def _evaluate(self, logbook: Logbook | None) -> None:
        """Evaluate on the main process only; every rank gets its value (they must agree on
        whether to save a 'best' checkpoint, which is a collective)."""
        value = float(self.eval_fn()) if self.is_main else 0.0
        if self._distributed():
            t = torch.tensor([value], dtype=torch.float64, device=self.device)
            dist.broadcast(t, src=0)
            value = float(t.item())
        if logbook:
            logbook.log(self.step, {"eval": value})
        if math.isfinite(value) and (self.best is None or value < self.best):
            self.best = value
            self.save_checkpoint(name="best")


def write_samples_page(run_dir: Path, columns: list[str] | None = None, rows: list[str] | None = None) -> Path:
    """``samples/index.html``: every snapshot grid, newest first, with the task's column captions
    (e.g. real A | fake B | rec A) or row captions (a text run's prompts, top to bottom) and the
    loss curves: a run's progress in any browser, no server."""
    import html

    samples = Path(run_dir) / "samples"
    grids = sorted(samples.glob("step-*.png"), reverse=True)
    caption = f"<p>columns: {html.escape(' | '.join(columns))}</p>" if columns else ""
    if rows:
        caption += "<p>rows, top to bottom:</p><ol>" + "".join(f"<li>{html.escape(r)}</li>" for r in rows) + "</ol>"
    items = "\n".join(f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>'
                       for p in grids)
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(Path(run_dir).name)} samples</title>"
            f"<style>body{{font-family:sans-serif}} img{{image-rendering:pixelated;max-width:100%}}</style>"
            f"<h1>{html.escape(Path(run_dir).name)}</h1>{caption}"
            f"<p><img src='../loss_curves.png' alt='loss curves' onerror=\"this.remove()\"></p>\n"
            f"{audit_section(Path(run_dir))}{items}\n")
    target = samples / "index.html"
    checkpoint.write_text_atomic(target, page)
    return target


def audit_section(run_dir: Path) -> str:
    """The run page's membership-inference section: the latest ``ganforge audit`` (``audit/audit.json``,
    ``audit/roc.png``), or nothing when the run has not been audited."""
    import html
    import json

    try:
        doc = json.loads((run_dir / "audit" / "audit.json").read_text())
        rows = "".join(f"<tr><td>{html.escape(str(name))}</td><td>{float(r['auc']):.4f}</td>"
                       f"<td>{float(r['tpr_at_1pct_fpr']):.4f}</td></tr>" for name, r in doc["attacks"].items())
        proto = doc.get("protocol", {})
        who = (f"step {proto.get('step')}: {proto.get('members', {}).get('n')} members "
               f"({html.escape(str(proto.get('members', {}).get('source')))}), {proto.get('non_members', {}).get('n')} "
               f"non-members ({html.escape(str(proto.get('non_members', {}).get('source')))})")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    return (f"<section id='audit'><h2>Membership-inference audit</h2><p>{who}; AUC 0.5 = no leak "
            f"(<a href='../audit/audit.json'>audit.json</a>)</p><table border='1' cellpadding='4'>"
            f"<tr><th>attack</th><th>ROC AUC</th><th>TPR at 1% FPR</th></tr>{rows}</table>"
            f"<p><img src='../audit/roc.png' alt='ROC curves' onerror=\"this.remove()\"></p></section>\n")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

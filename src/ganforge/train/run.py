"""``run_task``: the one path from options to a finished run directory, for every task.

Everything a run directory promises lives here once, so a new task (a translator, a style
decoder) gets it by construction instead of re-wiring it without the guards:

- the resume check: an existing run resumes only with the same options, except the task's
  resumable ones (``resume='never'`` refuses to touch it);
- ``config.json`` (every option, non-defaults listed) and ``run.json`` (``"task": <name>``, which
  :func:`ganforge.runs.load_run` dispatches on), written atomically by the main process only;
- building and resuming the :class:`~ganforge.train.loop.TrainingLoop`, running it, and
  ``summary.json``.

A task's entry point (``api.train_gan``, ``style.train.train_decoder``) supplies its options and a
``prepare`` function that builds the task, its batch source and its loop options once the
accelerator exists.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..version import __version__
from ..errors import CheckpointError, GanforgeError
from . import checkpoint

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
RESUME_MODES = ("auto", "never")


@dataclass
class Prepared:
    """What a task's ``prepare(accelerator)`` hands back to :func:`run_task`."""

    task: Any  # implements train.task.Task
    batches: Any  # implements train.batches.BatchSource
    loop_config: Any  # train.loop.LoopConfig
    run_info: dict[str, Any] = field(default_factory=dict)  # run.json fields after "task"
    summary: dict[str, Any] = field(default_factory=dict)  # added to the returned summary
    eval_fn: Callable[[], float] | None = None
    curve_groups: dict[str, list[str]] | None = None
    write_outputs: Callable[[Any], None] | None = None  # main process only, after training (e.g. export weights)
    final_summary: Callable[[Any], dict[str, Any]] | None = None  # summary fields known after training (loop -> dict)


def options_json(options: Any) -> dict[str, Any]:
    """config.json's content: ``{"options": every option, "non_defaults": [names]}``."""
    if hasattr(options, "to_json"):
        return options.to_json()
    values = asdict(options)
    defaults = {f.name: f.default for f in fields(options) if f.default is not MISSING}
    return {"options": values, "non_defaults": sorted(k for k, v in values.items() if k not in defaults or v != defaults[k])}


def load_options(cls: type, path: Path) -> Any:
    """Read a run's saved options back into ``cls`` (unknown keys ignored, missing ones default)."""
    if hasattr(cls, "load"):
        return cls.load(path)
    try:
        raw = json.loads(Path(path).read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.get("options", raw).items() if k in known})
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot read run config {path} (missing, truncated or corrupt): {exc}") from exc


def check_resume(options: Any, run_dir: Path, resume: str, resumable: tuple[str, ...],
                 legacy_config: str | None = None) -> None:
    """Refuse to mix runs: a run directory with checkpoints resumes only with the same maths.
    ``legacy_config``: the options file older versions of this task wrote instead of config.json."""
    if resume not in RESUME_MODES:
        raise GanforgeError(f"--resume must be auto or never, got {resume!r}")
    if not checkpoint.list_checkpoints(run_dir / "checkpoints"):
        return
    if resume == "never":
        raise GanforgeError(f"{run_dir} already holds a run; pass --resume auto to continue it or choose another --out")
    path = run_dir / CONFIG_FILE
    if not path.is_file() and legacy_config and (run_dir / legacy_config).is_file():
        path = run_dir / legacy_config
    saved = load_options(type(options), path)
    if hasattr(options, "resolved"):  # "auto" and the value it stands for are the same maths
        try:
            options, saved = options.resolved(), saved.resolved()
        except GanforgeError:
            pass  # invalid options: validation reports them
    changed = [f.name for f in fields(options)
               if getattr(options, f.name) != getattr(saved, f.name) and f.name not in resumable]
    steps_changed = getattr(options, "steps", None) != getattr(saved, "steps", None)
    if steps_changed and getattr(options, "lr_schedule", "constant") != "constant" \
            and not getattr(options, "lr_decay_steps", 0):
        changed.append("steps (the LR schedule's length follows --steps: set --lr-decay-steps to change it)")
    if steps_changed and hasattr(options, "steps_dependent"):
        changed += options.steps_dependent()
    if changed:
        raise CheckpointError(
            f"cannot resume {run_dir}: options differ from the saved run ({', '.join(changed)}); "
            f"use the same options or another --out")


def run_task(task_name: str, options: Any, out: str | Path, prepare: Callable[[Any], Prepared], *,
             resumable: tuple[str, ...], resume: str = "auto", device: str = "auto",
             handle_signals: bool = False, on_finish: Callable[[Any], None] | None = None,
             legacy_config: str | None = None, extra_files: dict[str, str] | None = None) -> dict[str, Any]:
    """Train the task ``task_name`` (a :data:`ganforge.runs.RUN_TASKS` name) into ``out``.

    ``options``: the run's options dataclass (saved as config.json, compared on resume).
    ``prepare(accelerator)``: builds the task and its data (after the resume check, so a refused
    resume costs no data loading). ``on_finish(loop)``: called on every process after training.
    ``extra_files``: more small files (name -> text) the main process writes atomically."""
    from ..device import accelerate_cpu_flag
    from .loop import TrainingLoop, make_accelerator

    if not is_dataclass(options):
        raise TypeError("run_task options must be a dataclass")
    run_dir = Path(out)
    check_resume(options, run_dir, resume, resumable, legacy_config)
    accelerator = make_accelerator(cpu=accelerate_cpu_flag(device))
    # Tasks seed torch's global RNG for their network initialisation and the loop checkpoints it;
    # the caller's own RNG state is given back afterwards, so training changes no global state.
    rng_devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        prepared = prepare(accelerator)
        loop = TrainingLoop(prepared.task, prepared.batches, prepared.loop_config, run_dir, accelerator,
                            eval_fn=prepared.eval_fn, curve_groups=prepared.curve_groups)
        is_main = accelerator.is_main_process
        if is_main:  # one writer: processes never race on a run's files
            run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text_atomic(run_dir / CONFIG_FILE, json.dumps(options_json(options), indent=2) + "\n")
            info = {"task": task_name, **prepared.run_info, "ganforge_version": __version__}
            checkpoint.write_text_atomic(run_dir / RUN_FILE, json.dumps(info, indent=2) + "\n")
            for name, text in (extra_files or {}).items():
                checkpoint.write_text_atomic(run_dir / name, text)
        resumed_from = loop.resume() if resume == "auto" else 0
        summary = loop.run(handle_signals=handle_signals)
        if on_finish is not None:
            on_finish(loop)
        if is_main and prepared.write_outputs is not None:
            prepared.write_outputs(loop)
        summary.update({"task": task_name, "run_dir": str(run_dir), "resumed_from": resumed_from, **prepared.summary,
                        "world_size": accelerator.num_processes})
        if prepared.final_summary is not None:
            summary.update(prepared.final_summary(loop))
        if is_main:
            checkpoint.write_text_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary

"""The run-directory protocol: what every run directory holds (run.json naming its task,
config.json, checkpoints/) and how to read it: :func:`read_run_meta`, :func:`require_task`,
:func:`load_checkpoint`. ``RUN_TASKS`` is the registry each model family registers its loader into
(``RUN_TASKS.register("gan", RunKind(loader, use))`` in the family's own module); this module
imports no family, so a family can use the protocol without making a circle.

``TASK_USES`` is data: the command that uses each task's runs, for one-line errors such as "this
is a translator run; use ganforge translate apply", which must work whether or not that family's
module has been imported. :func:`ganforge.runs.load_run` loads any run (it imports every family).

Importing this module loads no deep-learning library; loaders import what they need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import CheckpointError
from ..registry import Registry


@dataclass(frozen=True)
class RunKind:
    """How to load one task's runs, and which command uses them (for error messages)."""

    loader: Callable[..., Any]  # loader(run_dir, meta, checkpoint_name=...) -> the run's model
    use: str  # e.g. "ganforge sample RUN"; RUN stands for the run directory


RUN_TASKS: Registry[RunKind] = Registry("run task")

# task -> the command that uses its runs (RUN stands for the run directory)
TASK_USES: dict[str, str] = {
    "gan": "ganforge sample RUN / ganforge.load_generator",
    "style-decoder": "ganforge stylize --method adain --decoder RUN/decoder.safetensors / ganforge.runs.load_run",
    "translator": "ganforge translate apply RUN INPUT… --out DIR / ganforge.load_translator",
    "upscaler": "ganforge upscale IMAGE… --model RUN --out DIR / ganforge.restore.zoo.build_upscaler",
    "inpainter": "ganforge inpaint IMAGE --mask MASK --model RUN --out PATH / ganforge.restore.inpaint.load_inpainter",
}


def register_run_task(name: str, loader: Callable[..., Any]) -> None:
    """A family's loader for its runs (``name`` must be in :data:`TASK_USES`)."""
    RUN_TASKS.register(name, RunKind(loader, TASK_USES[name]))


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """run.json of a run directory; a missing, torn or foreign file is a one-line CheckpointError."""
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise CheckpointError(f"{run_dir} is not a ganforge run directory (no run.json)")
    try:
        meta = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {run_file} (truncated or corrupt): {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"cannot read {run_file}: not a JSON object")
    return meta


def run_task_name(run_dir: str | Path, meta: dict[str, Any] | None = None) -> str:
    """The task of a run; one this version does not know is a one-line CheckpointError."""
    meta = read_run_meta(run_dir) if meta is None else meta
    task = meta.get("task")
    known = set(TASK_USES) | set(RUN_TASKS.names())
    if not isinstance(task, str) or task not in known:
        raise CheckpointError(f"run {run_dir} has task {task!r}, which this version of ganforge cannot load "
                              f"(known: {', '.join(sorted(known))})")
    return task


def require_task(run_dir: str | Path, task: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json of ``run_dir`` if its task is ``task``; else a one-line error naming the command
    that does use this run."""
    meta = read_run_meta(run_dir) if meta is None else meta
    found = run_task_name(run_dir, meta)
    if found != task:
        use = (RUN_TASKS.get(found).use if found in RUN_TASKS else TASK_USES[found]).replace("RUN", str(run_dir))
        raise CheckpointError(f"run {run_dir} is a {found!r} run, not a {task!r} run; use {use}")
    return meta


def load_checkpoint(run_dir: Path, checkpoint_name: str = "latest"):
    """(path, tensors, state) of a run's checkpoint: 'latest', 'best' or 'step-N'."""
    from . import checkpoint

    root = Path(run_dir) / "checkpoints"
    if checkpoint_name == "latest":
        found = checkpoint.load_latest(root)
        if found is None:
            raise CheckpointError(f"no usable checkpoint in {root}")
        return found
    path = root / checkpoint_name
    tensors, state = checkpoint.load(path)
    return path, tensors, state

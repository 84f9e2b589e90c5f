"""Run directories by task: ``load_run(path)`` reads run.json's ``"task"`` and hands the run to
that task's loader, so a command meant for one kind of run gives a one-line answer for another
(instead of failing deep inside with a missing key), and a new task is one ``RUN_TASKS.register``.

Importing this module loads no deep-learning library; loaders import what they need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import CheckpointError
from .registry import Registry


@dataclass(frozen=True)
class RunKind:
    """How to load one task's runs, and which command uses them (for error messages)."""

    loader: Callable[..., Any]  # loader(run_dir, meta, checkpoint_name=...) -> the run's model
    use: str  # e.g. "ganforge sample RUN"; RUN stands for the run directory


RUN_TASKS: Registry[RunKind] = Registry("run task")


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
    """The registered task of a run; an unknown one is a one-line CheckpointError."""
    meta = read_run_meta(run_dir) if meta is None else meta
    task = meta.get("task")
    if not isinstance(task, str) or task not in RUN_TASKS:
        raise CheckpointError(f"run {run_dir} has task {task!r}, which this version of ganforge cannot load "
                              f"(known: {', '.join(RUN_TASKS.names())})")
    return task


def require_task(run_dir: str | Path, task: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json of ``run_dir`` if its task is ``task``; else a one-line error naming the command
    that does use this run."""
    meta = read_run_meta(run_dir) if meta is None else meta
    found = run_task_name(run_dir, meta)
    if found != task:
        use = RUN_TASKS.get(found).use.replace("RUN", str(run_dir))
        raise CheckpointError(f"run {run_dir} is a {found!r} run, not a {task!r} run; use {use}")
    return meta


def load_run(run_dir: str | Path, *, checkpoint_name: str = "latest") -> Any:
    """Load whatever a run trained, by its task: a :class:`ganforge.sample.Generator` for 'gan',
    a :class:`DecoderRun` for 'style-decoder'."""
    meta = read_run_meta(run_dir)
    return RUN_TASKS.get(run_task_name(run_dir, meta)).loader(Path(run_dir), meta, checkpoint_name=checkpoint_name)


def load_checkpoint(run_dir: Path, checkpoint_name: str = "latest"):
    """(path, tensors, state) of a run's checkpoint: 'latest', 'best' or 'step-N'."""
    from .train import checkpoint

    root = Path(run_dir) / "checkpoints"
    if checkpoint_name == "latest":
        found = checkpoint.load_latest(root)
        if found is None:
            raise CheckpointError(f"no usable checkpoint in {root}")
        return found
    path = root / checkpoint_name
    tensors, state = checkpoint.load(path)
    return path, tensors, state


def _load_gan(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest"):
    from .sample import load_generator

    return load_generator(run_dir, checkpoint_name=checkpoint_name)


@dataclass
class DecoderRun:
    """A trained style decoder with what it was trained for (use with ``encoder`` at ``layer``)."""

    decoder: Any  # nets.adain_decoder.AdaINDecoder, eval mode
    encoder: str
    layer: str
    step: int
    run_dir: Path


def _load_style_decoder(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest") -> DecoderRun:
    from .nets.adain_decoder import AdaINDecoder
    from .train import checkpoint

    layer, encoder = meta.get("layer", "relu4_1"), meta.get("encoder", "")
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    decoder = AdaINDecoder(layer)
    checkpoint.restore_modules({"decoder": decoder}, tensors, path)
    decoder.encoder_name = encoder
    return DecoderRun(decoder.eval(), encoder, layer, int(state["step"]), run_dir)


RUN_TASKS.register("gan", RunKind(_load_gan, "ganforge sample RUN / ganforge.load_generator"))
RUN_TASKS.register("style-decoder", RunKind(
    _load_style_decoder, "ganforge stylize --method adain --decoder RUN/decoder.safetensors / ganforge.runs.load_run"))


def _load_translator(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest"):
    from .translate.apply import load_translator

    return load_translator(run_dir, checkpoint=checkpoint_name)


RUN_TASKS.register("translator", RunKind(
    _load_translator, "ganforge translate apply RUN INPUT… --out DIR / ganforge.load_translator"))


def _load_upscaler(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest"):
    from .restore.sr_train import load_upscaler_run

    return load_upscaler_run(run_dir, checkpoint_name=checkpoint_name)


RUN_TASKS.register("upscaler", RunKind(
    _load_upscaler, "ganforge upscale IMAGE… --model RUN --out DIR / ganforge.restore.zoo.build_upscaler"))


def _load_inpainter(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest"):
    from .restore.inpaint import load_inpainter

    return load_inpainter(run_dir, checkpoint=checkpoint_name)


RUN_TASKS.register("inpainter", RunKind(
    _load_inpainter, "ganforge inpaint IMAGE --mask MASK --model RUN --out PATH / ganforge.restore.inpaint.load_inpainter"))

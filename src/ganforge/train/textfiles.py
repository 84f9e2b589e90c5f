"""A text run's frozen text encoder in its run directory: ``text_encoder.json`` (the encoder's
``config()``) and ``text_encoder.safetensors`` (its weights), written when the run starts and
read by ``ganforge sample RUN --prompt ...`` (:func:`ganforge.sample.load_generator`) and by a
resumed run, which does not train its encoder again."""

from __future__ import annotations

import json
from pathlib import Path

ENCODER_CONFIG, ENCODER_WEIGHTS = "text_encoder.json", "text_encoder.safetensors"


def encoder_files(run_dir: Path) -> tuple[Path, Path]:
    return run_dir / ENCODER_CONFIG, run_dir / ENCODER_WEIGHTS


def save_encoder(encoder, run_dir: Path) -> None:
    from safetensors.torch import save_file

    from .checkpoint import write_text_atomic

    cfg_path, weights = encoder_files(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = weights.with_name(f".{weights.name}.tmp")
    save_file(state, str(tmp))
    tmp.replace(weights)
    write_text_atomic(cfg_path, json.dumps(encoder.config(), indent=2) + "\n")


def load_run_encoder(run_dir: Path):
    """The frozen text encoder a text run was trained with (its two files in the run directory)."""
    from safetensors.torch import load_file

    from ..errors import CheckpointError
    from ..text.encoder import load_text_encoder

    cfg_path, weights = encoder_files(Path(run_dir))
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{run_dir} is a text run without its text encoder ({ENCODER_CONFIG}, {ENCODER_WEIGHTS})")
    try:
        config = json.loads(cfg_path.read_text())
        state = load_file(str(weights))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the text encoder of {run_dir}: {exc}") from exc
    return load_text_encoder(config, state).eval().requires_grad_(False)

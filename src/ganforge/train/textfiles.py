"""A text run's frozen text encoder in its run directory: ``text_encoder.json`` (the encoder's
``config()``) and ``text_encoder.safetensors`` (its weights), written when the run starts and
read by ``ganforge sample RUN --prompt ...`` (:func:`ganforge.sample.load_generator`) and by a
resumed run, which does not train its encoder again.

``captions.json``: the distinct caption texts the run trains on and how many images hold each,
written when the run starts, so ``ganforge eval RUN`` draws its prompts without the dataset."""

from __future__ import annotations

import json
from pathlib import Path

ENCODER_CONFIG, ENCODER_WEIGHTS = "text_encoder.json", "text_encoder.safetensors"
CAPTIONS_FILE = "captions.json"


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


def save_captions(run_dir: Path, texts: list[str], images: list[int], source: str = "") -> Path:
    """Write ``captions.json``: each distinct caption text with the number of training images that
    hold it (atomically; the main process only)."""
    from .checkpoint import write_text_atomic

    if len(texts) != len(images):
        raise ValueError(f"{len(texts)} caption texts but {len(images)} image counts")
    doc = {"format": "ganforge-captions", "version": 1, "source": source, "distinct": len(texts),
           "captions": [{"text": t, "images": int(k)} for t, k in zip(texts, images)]}
    path = Path(run_dir) / CAPTIONS_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def load_run_captions(run_dir: Path) -> tuple[list[str], list[int]] | None:
    """(caption texts, images holding each) from a run's ``captions.json``; None when it has none."""
    from ..errors import CheckpointError

    path = Path(run_dir) / CAPTIONS_FILE
    if not path.is_file():
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["captions"]
        texts, counts = [str(r["text"]) for r in rows], [int(r["images"]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    return texts, counts

"""``ganforge export RUN --out FILE``: the trained model of a run directory as one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import GanforgeError
from .generator_file import export_generator


def export_run(run_dir: str | Path, path: str | Path, *, checkpoint_name: str = "latest",
               ema: bool = True) -> dict[str, Any]:
    """Export the generator of a GAN run directory (``checkpoint_name``: latest, best or step-N)."""
    from ..sample import load_generator

    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise GanforgeError(f"{run_dir} is a file; ganforge export reads a run directory")
    return export_generator(load_generator(run_dir, checkpoint_name=checkpoint_name), path, ema=ema)

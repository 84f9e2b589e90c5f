"""Any run directory, loaded by its task: ``load_run(path)`` reads run.json's ``"task"`` and hands
the run to that family's loader (a ``Generator`` for 'gan', a ``DecoderRun`` for 'style-decoder', a
``Translator``, an upscaler network, an ``Inpainter``).

This module sits at the top of the house: it imports every family so that each registers its
loader (``train/rundir.py`` owns the registry and the run-directory protocol, and imports no
family). Code inside ganforge uses ``train.rundir``; this is the user-facing entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .restore import inpaint as _inpaint  # noqa: F401  (registers 'inpainter')
from .restore.sr import load as _sr_load  # noqa: F401  (registers 'upscaler')
from . import sample as _sample  # noqa: F401  (registers 'gan')
from .style.decoder_run import DecoderRun
from .train.rundir import (RUN_TASKS, RunKind, load_checkpoint, read_run_meta, require_task,  # noqa: F401
                           run_task_name)
from .translate import apply as _translate_apply  # noqa: F401  (registers 'translator')

__all__ = ["RUN_TASKS", "RunKind", "DecoderRun", "load_run", "read_run_meta", "require_task", "load_checkpoint",
           "run_task_name"]


def load_run(run_dir: str | Path, *, checkpoint_name: str = "latest") -> Any:
    """Load whatever a run trained, by its task."""
    meta = read_run_meta(run_dir)
    return RUN_TASKS.get(run_task_name(run_dir, meta)).loader(Path(run_dir), meta, checkpoint_name=checkpoint_name)

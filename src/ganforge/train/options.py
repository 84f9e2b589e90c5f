"""``LoopOptions``: the training loop's options (``--steps``, ``--batch-size``, ``--precision``, the
LR schedule, checkpoints, logging, NaN policy, evaluation cadence), declared once with their
defaults and validation, and the LR schedules they name.

The loop (:class:`~ganforge.train.loop.TrainingLoop`) takes a ``LoopOptions``; ``LoopConfig`` is
the same class under the loop's older name. A task config subclasses it and adds its own fields
(redeclaring ``steps``/``batch_size`` to give them its own defaults); ``loop_config()`` hands the
loop its part as a plain ``LoopOptions``, and ``RESUMABLE_CHANGES`` names the options a resumed
run may change (they do not change the maths). Importing this module loads no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

from ..device import check_precision
from ..errors import GanforgeError

SCHEDULES = ("constant", "linear", "cosine", "constant-then-linear")
NAN_POLICIES = ("skip", "reload")


@dataclass
class LoopOptions:
    steps: int = 1000
    batch_size: int = 1
    seed: int = 0
    precision: str = "auto"  # bf16 autocast where the hardware has it natively, else fp32
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0  # length of the LR schedule; 0: --steps
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    log_every: int = 10
    sample_every: int = 200
    ckpt_every: int = 500
    keep_ckpts: int = 3
    nan_policy: str = "skip"  # skip: drop the update; reload: also go back to the last checkpoint
    max_bad_steps: int = 50  # this many non-finite steps in a row stop the run with an error
    max_reloads: int = 5  # reload: this many reloads without a new checkpoint stop the run with an error
    eval_every: int = 0  # evaluate every N steps (tasks with an evaluator only; 0: off)
    progress: bool = True
    tensorboard: bool = True

    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (
        "steps", "log_every", "sample_every", "ckpt_every", "keep_ckpts", "progress", "tensorboard", "nan_policy",
        "max_bad_steps", "max_reloads")

    def validate(self) -> None:
        check_precision(self.precision)
        if self.lr_schedule not in SCHEDULES:
            raise GanforgeError(f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if self.nan_policy not in NAN_POLICIES:
            raise GanforgeError(f"--nan-policy must be skip or reload, got {self.nan_policy!r}")
        if self.max_reloads < 0:
            raise GanforgeError("--max-reloads must be at least 0")
        for name in ("steps", "batch_size", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise GanforgeError(f"--{name.replace('_', '-')} must be at least 1")

    def loop_options(self) -> dict:
        """This config's values for the loop's fields (a task may resolve ``auto`` ones first)."""
        return {f.name: getattr(self, f.name) for f in fields(LoopOptions)}

    def loop_config(self) -> "LoopOptions":
        """The loop's part of this config, as a plain :class:`LoopOptions`."""
        return LoopOptions(**self.loop_options())


LoopConfig = LoopOptions  # the loop's name for its options (one class: tests and tasks build either)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The LR multiplier of ``schedule`` at ``step`` of ``total``."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "constant-then-linear":  # pix2pix/CycleGAN: constant for the first half, then linear to 0
        return min(1.0, 2.0 * (1.0 - progress))
    return 1.0

"""``LoopOptions``: the training-loop options every task's config shares (``--steps``,
``--batch-size``, ``--precision``, checkpoints, logging, NaN policy), declared once.

A task config subclasses it and adds its own fields (redeclaring ``steps``/``batch_size`` to give
them its own defaults); ``loop_config()`` hands the loop's part to :class:`~ganforge.train.loop.LoopConfig`,
and ``RESUMABLE_CHANGES`` names the options a resumed run may change (they do not change the maths).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class LoopOptions:
    steps: int = 1000
    batch_size: int = 1
    seed: int = 0
    precision: str = "auto"  # bf16 autocast where the hardware has it natively, else fp32
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0  # length of the LR schedule; 0: --steps
    grad_clip: float = 0.0
    log_every: int = 10
    sample_every: int = 200
    ckpt_every: int = 500
    keep_ckpts: int = 3
    nan_policy: str = "skip"
    max_reloads: int = 5
    progress: bool = True
    tensorboard: bool = True

    RESUMABLE_CHANGES = ("steps", "log_every", "sample_every", "ckpt_every", "keep_ckpts", "progress",
                         "tensorboard", "nan_policy", "max_reloads")

    def loop_options(self) -> dict:
        """This config's values for the loop's fields (a task may resolve ``auto`` ones first)."""
        from .loop import LoopConfig

        names = {f.name for f in fields(LoopConfig)}
        return {k: v for k, v in asdict(self).items() if k in names}

    def loop_config(self):
        from .loop import LoopConfig

        return LoopConfig(**{**self.loop_options(), "eval_every": 0})

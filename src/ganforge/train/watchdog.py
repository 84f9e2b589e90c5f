"""A watchdog for a lost game: the discriminator has won outright and the generator gets no signal.

It reads only the values the training loop already logs (``D_real``, ``D_fake``, ``loss_G`` at
each log step), so it adds no device-to-host synchronisation to a training step. When, for a
sustained window of steps, D(real) and D(fake) are pinned at their ends (D is sure of every image)
and G's loss is flat, it says so in one line with the likely remedy and, under the ``act``
policy, acts — first by turning on (or raising) adaptive augmentation, then by halving D's
learning rate — and starts a fresh window. Its state (the window and the actions taken) is part
of the task's checkpointed state, so a resumed run takes the same actions at the same steps.

Only losses whose D outputs are probabilities (minimax, non-saturating) have a pinned end to
detect; for the others the watchdog stays silent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

POLICIES = ("off", "warn", "act")


@dataclass
class WatchdogLimits:
    """When the game counts as lost: at ``min_points`` consecutive log points spanning at least
    ``min_steps`` steps, every logged D(fake) <= ``d_fake_max`` and D(real) >= ``d_real_min``,
    and G's loss did not come down by ``flat_drop`` or more from the first point to the last."""

    min_points: int = 8
    min_steps: int = 50
    d_fake_max: float = 0.05
    d_real_min: float = 0.95
    flat_drop: float = 0.5
    augment_ops: str = "translation,color"  # what "enable augmentation" turns on
    augment_p: float = 0.3  # p set (or added) by an augmentation action
    ada_target: float = 0.6
    lr_factor: float = 0.5  # D's learning rate multiplier of an LR action
    max_lr_actions: int = 3


@dataclass
class Action:
    """What the watchdog decided at one log step: the message and the changes to apply."""

    step: int
    message: str
    augment: dict[str, Any] = field(default_factory=dict)  # {"ops", "p", "target"} to set
    lr_scale: dict[str, float] = field(default_factory=dict)  # optimiser name -> factor


class LostGameWatchdog:
    def __init__(self, policy: str = "act", limits: WatchdogLimits | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"watchdog policy must be one of {POLICIES}, got {policy!r}")
        self.policy, self.limits = policy, limits or WatchdogLimits()
        self.history: list[tuple[int, float, float, float]] = []  # (step, D_real, D_fake, loss_G)
        self.actions: list[dict[str, Any]] = []

    # --- state (checkpointed with the task) ------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.history], "actions": [dict(a) for a in self.actions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [tuple(h) for h in state.get("history", [])]
        self.actions = [dict(a) for a in state.get("actions", [])]

    @property
    def lr_actions(self) -> int:
        return sum(1 for a in self.actions if a.get("lr_scale"))

    # --- the check ---------------------------------------------------------------------------------
    def lost(self) -> bool:
        lim, h = self.limits, self.history
        if len(h) < lim.min_points or h[-1][0] - h[0][0] < lim.min_steps:
            return False
        return (all(r >= lim.d_real_min and f <= lim.d_fake_max for _, r, f, _ in h)
                and h[-1][3] > h[0][3] - lim.flat_drop)

    def observe(self, step: int, logged: dict[str, Any], *, augment_ops: tuple[str, ...], augment_p: float,
                ada_target: float | None) -> Action | None:
        """Take one log step's values; returns an :class:`Action` when the game is lost (its
        message always, its changes under the ``act`` policy). ``augment_*``: the run's current
        augmentation, so the remedy fits it."""
        if self.policy == "off":
            return None
        try:
            point = (int(step), float(logged["D_real"]), float(logged["D_fake"]), float(logged["loss_G"]))
        except (KeyError, TypeError, ValueError):
            return None
        lim = self.limits
        pinned = point[1] >= lim.d_real_min and point[2] <= lim.d_fake_max
        if not pinned:  # the window is made of consecutive pinned points
            self.history = []
            return None
        self.history.append(point)
        while len(self.history) > lim.min_points and self.history[1][0] <= point[0] - lim.min_steps:
            self.history.pop(0)  # keep just enough points to span the window
        if not self.lost():
            return None
        span = f"steps {self.history[0][0]}-{point[0]}"
        self.history = []  # a fresh window before the next decision
        head = (f"watchdog: the discriminator has won ({span}: D(real) ~ {point[1]:.3f}, D(fake) ~ {point[2]:.3g}, "
                f"G loss flat at ~{point[3]:.2f}); ")
        action = Action(step=point[0], message="")
        if not augment_ops or augment_p < 0.5 or ada_target is None:
            ops = augment_ops or tuple(lim.augment_ops.split(","))
            p = min(0.8, augment_p + lim.augment_p) if augment_ops else lim.augment_p
            remedy = f"remedy: adaptive augmentation ({','.join(ops)}, p {augment_p:.2f} -> {p:.2f}, target {lim.ada_target})"
            action.augment = {"ops": ",".join(ops), "p": p, "target": ada_target if ada_target is not None else lim.ada_target}
        elif self.lr_actions < lim.max_lr_actions:
            remedy = f"remedy: lower D's learning rate (x{lim.lr_factor})"
            action.lr_scale = {"D": lim.lr_factor}
        else:
            remedy = "remedy: none left to try automatically; try --d-norm spectral, --r1-gamma or a smaller --lr-d"
        if self.policy == "act" and (action.augment or action.lr_scale):
            action.message = head + remedy.replace("remedy: ", "acting: ")
            self.actions.append(asdict(action))
        else:
            action.message = head + remedy + " (--watchdog act applies it)" * (self.policy == "warn")
            action.augment, action.lr_scale = {}, {}
        return action

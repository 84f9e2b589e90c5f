"""``RunContext``: what a task sees at every step of the loop (implements ``task.StepContext``):
the next batch, the run's random numbers, autocast, and ``optimize`` — backward, gradient sync,
the NaN guard, clipping and the optimiser step through the GradScaler.

The NaN guard has two forms. On the device (``loop.device_nan_guard``: ``--nan-policy skip``, no
GradScaler, a fused optimiser): "this update is non-finite" is a device-side flag that the fused
optimiser reads itself (its ``found_inf``, as under a GradScaler), so the update is dropped with no
host synchronisation; the loop adds the flags up on the device and reads them at log intervals.
Otherwise (``reload``, which must act on the step itself; fp16's GradScaler; unfused optimisers)
the flag is read on the host at every optimiser step."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..device import autocast
from .batches import Batch, batch_size_of

class RunContext:
    """What a task sees at every step (implements ``task.StepContext``)."""

    def __init__(self, loop: Any) -> None:  # a loop.TrainingLoop (not imported: loop imports this module)
        self._loop = loop
        self.device = loop.device
        self.generator = loop.generator
        self.step = 0
        self.bad_in_step = False  # an update of this iteration was skipped (counted as a bad step)
        self.overflow_only = False  # ... only because the GradScaler's loss scale overflowed
        self._scaled = set()  # optimisers stepped through the GradScaler since its last update()
        self.bad_flag: torch.Tensor | None = None  # device-side guard: 0-d, 1.0 if an update was dropped
        self._one = torch.ones((), device=self.device)
        self._params: dict[tuple[str, tuple[int, ...]], list[torch.Tensor]] = {}  # (optimizer, modules) -> params

    def begin_iteration(self, step: int) -> None:
        self.step, self.bad_in_step, self.overflow_only = step, False, True
        self.bad_flag = None

    def end_iteration(self) -> None:
        """One GradScaler.update() per iteration, after every optimiser's step (G and D share the
        scale; updating after each step counted two growth/backoff steps per iteration)."""
        if self._loop.scaler is not None and self._scaled:
            self._loop.scaler.update()
            self._scaled.clear()

    def next_batch(self) -> Batch:
        """The next dict of named tensors; images seen grow by its counted tensor's length."""
        loop = self._loop
        batch = loop.batches.get(loop.batch_index, loop.rank, loop.world, self.generator, self.device)
        loop.batch_index += 1
        loop.images_seen += batch_size_of(batch, getattr(loop.batches, "count_key", None)) * loop.world
        return batch

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum numbers over processes (identity with one process), e.g. ADA's statistics."""
        loop = self._loop
        if not loop._distributed():
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, generator=self.generator)

    def autocast(self):
        return autocast(self._loop.precision, self.device)

    def optimize(self, loss: torch.Tensor, optimizer: str, modules: list[nn.Module]) -> bool:
        loop = self._loop
        opt = loop.optimizers[optimizer]
        key = (optimizer, tuple(id(m) for m in modules))
        if key not in self._params:  # walking the module tree every step costs more than a tiny net's step
            self._params[key] = [p for m in modules for p in m.parameters()]
        params = [p for p in self._params[key] if p.requires_grad]
        if getattr(loop, "device_nan_guard", False) and opt.defaults.get("fused"):
            return self._optimize_on_device(loss, opt, params)
        if not loop.all_finite(loss.detach().float().reshape(1)):
            opt.zero_grad(set_to_none=True)
            self.bad_in_step, self.overflow_only = True, False
            return False
        scaler = loop.scaler
        if scaler is not None and optimizer in self._scaled:
            # A second step of one optimiser within an iteration (n_critic > 1): the GradScaler
            # allows one unscale_/step per optimiser per update().
            scaler.update()
            self._scaled.clear()
        (scaler.scale(loss) if scaler else loss).backward()
        loop.sync_gradients(params)
        if scaler:
            scaler.unscale_(opt)  # gradients are true-scale from here on (clipping, checks)
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not loop.all_finite(torch.stack([g.float().abs().max() for g in grads])):
            if scaler:  # the scaler records the overflow, skips the step, and backs off at update()
                scaler.step(opt)
                self._scaled.add(optimizer)
            else:
                self.overflow_only = False
            opt.zero_grad(set_to_none=True)
            self.bad_in_step = True
            return False
        if loop.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, loop.cfg.grad_clip)
        if scaler:
            scaler.step(opt)
            self._scaled.add(optimizer)
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return True

    def _optimize_on_device(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> bool:
        """Backward and a fused optimiser step that the optimiser itself drops when the loss or a
        gradient is non-finite (its ``found_inf`` flag, read on the device): no host sync. Returns
        True (the step was submitted); whether it was dropped is in ``bad_flag``, which the loop
        reads at its log intervals."""
        loop = self._loop
        found = torch.zeros((), device=loss.device)
        loss.backward()
        loop.sync_gradients(params)
        checked = [p.grad for p in params if p.grad is not None and p.grad.dtype == torch.float32]
        checked.append(loss.detach().float().reshape(1))
        others = [p.grad for p in params if p.grad is not None and p.grad.dtype != torch.float32]
        # sets found to 1 where the loss or any gradient is inf/nan (multiplies them by 1: no change)
        for group in (checked, others):
            if group:
                torch._amp_foreach_non_finite_check_and_unscale_(group, found, self._one)
        if loop._distributed():  # one decision on every rank
            dist.all_reduce(found, op=dist.ReduceOp.MAX)
        if loop.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, loop.cfg.grad_clip)
        opt.found_inf = found  # what torch's fused Adam/AdamW/SGD read (GradScaler's protocol)
        try:
            opt.step()
        finally:
            del opt.found_inf
        opt.zero_grad(set_to_none=True)
        self.bad_flag = found if self.bad_flag is None else torch.maximum(self.bad_flag, found)
        return True

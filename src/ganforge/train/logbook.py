"""Run logging: ``log.jsonl`` (one JSON object of scalars per logged step; a task's 0-d tensor
scalars are their mean over the log interval, see :class:`ScalarMeans`), TensorBoard events,
and a loss-curve PNG redrawn from the JSONL. Written by the main process only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch


class ScalarMeans:
    """A task's per-step scalars between two log lines: 0-d tensors are summed on their device (one
    ``_foreach_add_`` per step, no host sync) and read once by :meth:`pop` as their mean over the
    steps that reported them; plain numbers (augment p, a stage) are kept as their latest value."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, Any] = {}
        self.order: dict[str, None] = {}

    def add(self, scalars: dict[str, Any]) -> None:
        into, values = [], []
        for key, value in scalars.items():
            if key not in self.order:
                self.order[key] = None
            if isinstance(value, torch.Tensor):
                if value.dtype != torch.float32 or value.dim():
                    value = value.float().reshape(())
                value = value.detach()
                if key in self.sums:
                    into.append(self.sums[key])
                    values.append(value)
                else:
                    self.sums[key] = value.clone()
                self.counts[key] = self.counts.get(key, 0) + 1
            else:
                self.latest[key] = value
        if into:
            torch._foreach_add_(into, values)

    def pop(self) -> dict[str, Any]:
        """The interval's means (floats, one host read) and latest plain values; then empty."""
        means: dict[str, float] = {}
        if self.sums:
            keys = list(self.sums)
            stacked = torch.stack([self.sums[k] for k in keys]).cpu().tolist()
            means = {k: v / self.counts[k] for k, v in zip(keys, stacked)}
        out = {k: means[k] if k in means else self.latest[k] for k in self.order}  # the task's key order
        self.sums, self.counts, self.latest, self.order = {}, {}, {}, {}
        return out


class Logbook:
    def __init__(self, run_dir: Path, *, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.path = run_dir / "log.jsonl"
        if resume_step >= 0 and self.path.exists():
            self._truncate(resume_step)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step or None)
            except Exception:  # tensorboard missing or broken: the JSONL log is the record
                self.writer = None

    def _truncate(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint so the log matches the weights."""
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        self.path.write_text("".join(k + "\n" for k in kept))

    def log(self, step: int, scalars: dict[str, Any]) -> None:
        record = {"step": step, **{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in scalars.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in scalars.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(log_path: Path, out_path: Path, groups: dict[str, list[str]] | None = None) -> Path | None:
    """Draw the scalars of ``log.jsonl`` as stacked panels (losses; D outputs; ...) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log_path.exists():
        return None
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not records:
        return None
    if groups is None:
        keys = [k for k in records[-1] if k != "step" and isinstance(records[-1][k], (int, float))]
        groups = {"scalars": keys}
    groups = {t: [k for k in ks if any(r.get(k) for r in records)] for t, ks in groups.items()}  # drop all-zero
    groups = {t: ks for t, ks in groups.items() if ks}
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 2.6 * len(groups)), sharex=True, squeeze=False)
    for ax, (title, keys) in zip(axes[:, 0], groups.items()):
        for key in keys:
            pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), label=key, linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out_path)
    return out_path

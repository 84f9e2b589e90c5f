"""Per-step overhead of ganforge's training loop, where the networks cost almost nothing.

A tiny DCGAN (16x16, width 8, batch 8, 1 thread by default): ganforge's real loop (GanTask +
TrainingLoop: EMA, the NaN guard, lr schedule, logging every 10 steps as by default) against a plain
PyTorch loop of the same two networks (ganforge's own ``dcgan`` G and D, same initialisation) and
the same non-saturating loss, with default Adam, no EMA, no checks, no logging. Both read the same
in-memory uint8 images. The two loops alternate step by step (ganforge's batch source runs one
plain step at each fetch and times it apart), so a shared machine's load hits both alike; each
round is ``--steps`` steps of both, timed with the process CPU clock by default, ganforge's
start-up and end-of-run checkpoint/plot outside the timed span. Medians of the rounds. Usage:

    python benchmarks/bench_loop_overhead.py --steps 100 --rounds 7

Runs against any checkout that has the same public API (PYTHONPATH=<checkout>/src), which is how
"before" figures are taken.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_speed import cpu_flags  # noqa: E402

RES, WIDTH, CHANNELS = 16, 8, 3
CLOCK = time.process_time  # --clock wall: time.perf_counter


class Interleaved:
    """ganforge's batch source, which also runs one step of the plain loop at each fetch: the two
    loops alternate step by step, so a shared machine's load hits both alike. Records, per fetch,
    the clock before and after the plain step."""

    def __init__(self, inner, plain: "Plain") -> None:
        self.inner, self.plain, self.marks = inner, plain, []
        self.count_key = getattr(inner, "count_key", None)

    def get(self, *args, **kwargs):
        t0 = CLOCK()
        self.plain.step()
        self.marks.append((t0, CLOCK()))
        return self.inner.get(*args, **kwargs)


def rates(marks: list[tuple[float, float]]) -> tuple[float, float]:
    """(plain, ganforge) steps/s over the fetches ``marks``: a plain step is the span inside a
    fetch; a ganforge step is the span from the end of one fetch to the start of the next."""
    plain = sum(t1 - t0 for t0, t1 in marks[:-1])
    ours = sum(nxt[0] - cur[1] for cur, nxt in zip(marks[:-1], marks[1:]))
    n = len(marks) - 1
    return n / plain, n / ours


class Plain:
    """The plain loop, run in segments of steps."""

    def __init__(self, images: torch.Tensor, batch: int) -> None:
        from ganforge.nets import GanNetSpec, build_gan
        from ganforge.nets.layers import dcgan_init

        torch.manual_seed(0)
        self.G, self.D = build_gan("dcgan", GanNetSpec(RES, CHANNELS, width=WIDTH))
        dcgan_init(self.G)
        dcgan_init(self.D)
        self.oG = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.oD = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.images, self.batch, self.i = images, batch, 0

    def step(self) -> None:
        G, D, batch, n = self.G, self.D, self.batch, len(self.images)
        i, self.i = self.i, self.i + 1
        idx = torch.arange(i * batch, (i + 1) * batch) % n
        real = self.images[idx].float().div(127.5).sub(1)
        fake = G(torch.randn(batch, 100), None)
        loss_d = F.softplus(-D(real, None)).mean() + F.softplus(D(fake.detach(), None)).mean()
        self.oD.zero_grad()
        loss_d.backward()
        self.oD.step()
        loss_g = F.softplus(-D(fake, None)).mean()
        self.oG.zero_grad()
        loss_g.backward()
        self.oG.step()


class Ganforge:
    """ganforge's TrainingLoop, continued segment by segment (each ``run()`` goes on from where the
    last stopped, in memory; its start-up and end-of-run checkpoint and plot fall outside the timed
    span)."""

    def __init__(self, images: torch.Tensor, batch: int, tmp: str, plain: Plain) -> None:
        from ganforge.config import GanConfig
        from ganforge.nets import GanNetSpec
        from ganforge.train.gan import GanTask
        from ganforge.train.loop import TensorBatches, TrainingLoop, make_accelerator

        acc = make_accelerator(cpu=True)
        cfg = GanConfig(arch="dcgan", d_norm="batch", precision="fp32", resolution=RES, width=WIDTH, batch_size=batch, steps=0, loss="non-saturating",
                        sample_every=0, ckpt_every=0, progress=False, tensorboard=False)
        task = GanTask(cfg, GanNetSpec(RES, CHANNELS, width=WIDTH), acc.device)
        self.batches = Interleaved(TensorBatches(images, torch.zeros(len(images), dtype=torch.long), batch, 0), plain)
        loop_cfg = cfg.loop_config()
        loop_cfg.steps = 1
        self.loop = TrainingLoop(task, self.batches, loop_cfg, tmp, acc)

    def segment(self, steps: int) -> tuple[float, float]:
        """(plain, ganforge) steps/s over ``steps`` more steps of each."""
        self.batches.marks = []
        self.loop.cfg.steps += steps
        self.loop.run()
        return rates(self.batches.marks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="steps per timed segment")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5, help="rounds of --steps steps; medians reported")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="cpu (default): this process's CPU time, robust to other jobs on a shared machine "
                        "(use with --threads 1); wall: elapsed time")
    args = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    import ganforge

    images = torch.randint(0, 256, (args.batch_size * 16, CHANNELS, RES, RES), dtype=torch.uint8)
    rates: dict[str, list[float]] = {"plain": [], "ganforge": []}
    with tempfile.TemporaryDirectory() as tmp:
        runner = Ganforge(images, args.batch_size, tmp, Plain(images, args.batch_size))
        runner.segment(args.warmup)
        for _ in range(args.rounds):
            plain_rate, ours = runner.segment(args.steps)
            rates["plain"].append(plain_rate)
            rates["ganforge"].append(ours)
            print(f"  plain {plain_rate:.1f} steps/s, ganforge {ours:.1f} steps/s", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({"ganforge_src": str(Path(ganforge.__file__).parent), "cpu": cpu_flags(), "torch": torch.__version__,
                      "threads": args.threads, "clock": args.clock, "steps": args.steps, "batch": args.batch_size, "rounds": args.rounds,
                      "plain_steps_s": round(med["plain"], 1), "ganforge_steps_s": round(med["ganforge"], 1),
                      "ratio": round(med["ganforge"] / med["plain"], 3),
                      "rounds_steps_s": {k: [round(x, 1) for x in v] for k, v in rates.items()}}, indent=1))


if __name__ == "__main__":
    main()

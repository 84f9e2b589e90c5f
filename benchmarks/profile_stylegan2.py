"""Where a StyleGAN2 training step spends its time: torch.profiler over 16 steps of the real loop
(GanTask + TrainingLoop), after 8 warm-up steps. 16 steps hold one lazy R1 pass (every 16) and
four path-length passes (every 4), so the table is a fair average. Prints img/s and the operator
tables sorted by device time and by CPU self time.

    python benchmarks/profile_stylegan2.py --precision fp32 --resolution 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from ganforge.config import GanConfig
from ganforge.nets import GanNetSpec
from ganforge.train.gan import GanTask
from ganforge.train.loop import TensorBatches, TrainingLoop, make_accelerator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precision", default="fp32")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--rows", type=int, default=22)
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    acc = make_accelerator()
    res, batch = args.resolution, args.batch_size
    images = torch.randint(0, 256, (batch * 4, 3, res, res), dtype=torch.uint8)
    cfg = GanConfig(arch="stylegan2", resolution=res, width=args.width, batch_size=batch, precision=args.precision,
                    steps=8, sample_every=0, ckpt_every=0, log_every=10**9, progress=False, tensorboard=False)
    task = GanTask(cfg, GanNetSpec(res, 3, width=args.width), acc.device)
    batches = TensorBatches(images, torch.zeros(len(images), dtype=torch.long), batch, 0)
    with tempfile.TemporaryDirectory() as tmp:
        loop = TrainingLoop(task, batches, cfg.loop_config(), tmp, acc)
        t = time.perf_counter()
        loop.run()
        sync()
        print(f"{args.precision}: 8 warm-up steps {time.perf_counter() - t:.1f} s", flush=True)
        loop.cfg.steps = 24
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            t = time.perf_counter()
            loop.run()
            sync()
            wall = time.perf_counter() - t
    print(f"{args.precision}: 16 steps {wall:.2f} s -> {16 * batch / wall:.1f} img/s (under the profiler)")
    table = prof.key_averages()
    print(table.table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=args.rows,
                      max_name_column_width=60))
    print(table.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()

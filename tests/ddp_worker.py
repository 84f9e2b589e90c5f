"""Run by tests/test_ddp.py under torchrun: trains on 2 CPU processes (gloo) and saves each rank's
final weights so the test can compare them."""

import sys
from pathlib import Path

import torch

import ganforge

out = Path(sys.argv[1])


def dump(loop) -> None:
    torch.save({f"{n}.{k}": v for n, m in loop.task.modules().items() for k, v in m.state_dict().items()},
               out / f"rank{loop.rank}.pt")


cfg = ganforge.GanConfig(data="digits", max_images=512, resolution=16, width=8, batch_size=16, steps=4,
                         conditional=True, r1_gamma=0.5, augment="translation", augment_p=0.5,
                         sample_every=0, progress=False, tensorboard=False)
summary = ganforge.train_gan(cfg, out=out / "run", on_finish=dump)
print("world", summary["world_size"])

"""Run by tests/test_ddp.py under torchrun: trains on 2 CPU processes (gloo) and saves each rank's
final weights (and ADA's p) so the test can compare them.

``ddp_worker.py OUT``: one run of 4 steps in OUT/run.
``ddp_worker.py OUT resume``: a straight run of 8 steps (OUT/straight) and a run of 4 steps
resumed to 8 (OUT/split), with horizontal flips and adaptive augmentation, so every rank's own
random streams and the all-reduced ADA statistic must be checkpointed for the two to agree.
``ddp_worker.py OUT prepared``: OUT/src (a folder of images) trained through the prepared-dataset
cache (OUT/prepared; each rank's batch indices in OUT/reads-rankR.json), then in memory
(GANFORGE_PREPARE=0, OUT/memory).
"""

import sys
from pathlib import Path

import torch

import ganforge

out = Path(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "single"


def dump(name: str):
    def on_finish(loop) -> None:
        state = {f"{n}.{k}": v for n, m in loop.task.modules().items() for k, v in m.state_dict().items()}
        state["ada_p"] = torch.tensor(loop.task.ada.p, dtype=torch.float64)
        torch.save(state, out / f"{name}-rank{loop.rank}.pt")
    return on_finish


base = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, conditional=True, r1_gamma=0.5,
            augment="translation", augment_p=0.5, sample_every=0, progress=False, tensorboard=False, precision="fp32")
if mode == "prepared":  # a raw folder (made by the test) through the cache, then the in-memory path
    import json
    import os

    from ganforge.train.batches import MemmapBatches

    reads = []
    plain_get = MemmapBatches.get

    def get(self, index, rank, world, generator, device):
        reads.append([index, self.shards.indices(index, rank, world).tolist()])
        return plain_get(self, index, rank, world, generator, device)

    MemmapBatches.get = get
    opts = dict(base, data=str(out / "src"), max_images=None, conditional=False, hflip=True, steps=4)
    summary = ganforge.train_gan(ganforge.GanConfig(**opts), out=out / "prepared", on_finish=dump("prepared"))
    assert summary["data_source"].startswith("prepared "), summary["data_source"]
    rank = int(os.environ["RANK"])
    (out / f"reads-rank{rank}.json").write_text(json.dumps(reads))
    os.environ["GANFORGE_PREPARE"] = "0"
    memory = ganforge.train_gan(ganforge.GanConfig(**opts), out=out / "memory", on_finish=dump("memory"))
    assert memory["data_source"].startswith("folder "), memory["data_source"]
elif mode == "single":
    summary = ganforge.train_gan(ganforge.GanConfig(**base, steps=4), out=out / "run", on_finish=dump("run"))
else:
    opts = dict(base, hflip=True, augment="translation,cutout", ada_target=0.6, ckpt_every=4)
    ganforge.train_gan(ganforge.GanConfig(**opts, steps=8), out=out / "straight", on_finish=dump("straight"))
    ganforge.train_gan(ganforge.GanConfig(**opts, steps=4), out=out / "split", on_finish=dump("half"))
    summary = ganforge.train_gan(ganforge.GanConfig(**opts, steps=8), out=out / "split", on_finish=dump("split"))
    assert summary["resumed_from"] == 4, summary
print("world", summary["world_size"])

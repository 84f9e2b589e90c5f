"""Multi-process training through Accelerate's process group (torchrun, gloo on CPU): both ranks
must end with identical parameters, and a resumed 2-process run must equal a straight one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _torchrun(tmp_path: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stdout


def _initial_weights(run: Path) -> dict[str, torch.Tensor]:
    """The run's own step-0 weights: its task built again from its saved options."""
    import ganforge
    from ganforge.nets import GanNetSpec
    from ganforge.train.gan import GanTask

    cfg = ganforge.GanConfig.load(run / "config.json")
    spec = GanNetSpec(**json.loads((run / "run.json").read_text())["spec"])
    task = GanTask(cfg, spec, torch.device("cpu"))
    return {f"{n}.{k}": v for n, m in task.modules().items() for k, v in m.state_dict().items()}


def _params(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if k != "ada_p" and "running_" not in k and "num_batches" not in k]


@pytest.mark.timeout(400)
def test_two_process_training_keeps_ranks_identical(tmp_path):
    _torchrun(tmp_path)
    a = torch.load(tmp_path / "run-rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "run-rank1.pt", weights_only=True)
    params = _params(a)
    assert len(params) > 10
    for key in params:
        assert torch.equal(a[key], b[key]), key
    # and training did something: the ranks moved together away from the run's initial weights
    init = _initial_weights(tmp_path / "run")
    moved = [k for k in params if k.startswith(("G.", "D.")) and not torch.equal(init[k], a[k])]
    weights = [k for k in params if k.startswith(("G.", "D.")) and k.endswith("weight")]
    assert any(k.startswith("G.") for k in moved) and any(k.startswith("D.") for k in moved)
    assert sum(k in moved for k in weights) >= 0.8 * len(weights), sorted(set(weights) - set(moved))


@pytest.mark.timeout(400)
def test_two_process_resume_equals_straight_run(tmp_path):
    """8 steps straight vs 4 steps + resumed to 8: each rank's RNG (flips, augmentation, noise) comes
    back from the checkpoint and ADA's statistic is summed over ranks, so both runs agree exactly."""
    _torchrun(tmp_path, "resume")
    runs = {name: [torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
            for name in ("straight", "half", "split")}
    params = _params(runs["straight"][0])
    for name, (r0, r1) in runs.items():
        for key in params + ["ada_p"]:
            assert torch.equal(r0[key], r1[key]), (name, key)  # ranks agree (weights and ADA's p)
    for key in params + ["ada_p"]:
        assert torch.equal(runs["straight"][0][key], runs["split"][0][key]), key
    assert any(not torch.equal(runs["half"][0][k], runs["split"][0][k]) for k in params)  # the resume trained


@pytest.mark.timeout(400)
def test_two_process_training_on_a_prepared_folder(tmp_path, monkeypatch):
    """A raw folder is prepared into the cache once (one process per machine first), each rank
    reads a disjoint slice of every batch from disk, and the ranks end identical, and identical
    to the same 2-process run in memory."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i in range(24):
            Image.fromarray(rng.integers(0, 256, (18, 20, 3), dtype=np.uint8)).save(tmp_path / "src" / c / f"{i}.png")
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    _torchrun(tmp_path, "prepared")
    assert len(list((tmp_path / "home" / "datasets" / "prepared").iterdir())) == 1
    runs = {name: [torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
            for name in ("prepared", "memory")}
    params = _params(runs["prepared"][0])
    for key in params:
        assert torch.equal(runs["prepared"][0][key], runs["prepared"][1][key]), key
        assert torch.equal(runs["prepared"][0][key], runs["memory"][0][key]), key
    reads = [dict((i, set(idx)) for i, idx in json.loads((tmp_path / f"reads-rank{r}.json").read_text()))
             for r in (0, 1)]
    assert reads[0].keys() == reads[1].keys() and len(reads[0]) == 4
    for step in reads[0]:
        assert len(reads[0][step]) == len(reads[1][step]) == 16 and not reads[0][step] & reads[1][step]

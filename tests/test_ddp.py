"""Multi-process training through Accelerate's process group (torchrun, gloo on CPU): both ranks
must end with identical parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch


def test_two_process_training_keeps_ranks_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stdout
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    params = [k for k in a if "running_" not in k and "num_batches" not in k]
    assert len(params) > 10
    for key in params:
        assert torch.equal(a[key], b[key]), key
    # and training did something: the ranks saw different data but moved together
    assert (tmp_path / "run" / "checkpoints").is_dir()

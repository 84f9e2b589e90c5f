"""Test set-up: point ganforge at the shared offline assets when they exist, keep the cache in a
per-session folder, and limit threads so tests behave on 2 cores.

``GANFORGE_TEST_ASSETS`` overrides where the assets are looked for; CI's first pass sets it to a
missing path, so the suite is proven to pass for a user who has no ``../shared`` at all. Tests
that need a real asset call ``require(...)`` and skip with a one-line reason when it is absent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# not resolved: CI names it through ../shared
SHARED = Path(os.environ.get("GANFORGE_TEST_ASSETS") or REPO.parent / "shared" / "assets")
HAVE_ASSETS = SHARED.is_dir()

if HAVE_ASSETS:
    os.environ.setdefault("GANFORGE_DATA_DIR", str(SHARED / "datasets"))
    os.environ.setdefault("GANFORGE_WEIGHTS_DIR", str(SHARED / "weights"))
else:  # a user's machine: nothing local, and (offline) nothing to download
    for var in ("GANFORGE_DATA_DIR", "GANFORGE_WEIGHTS_DIR"):
        os.environ.pop(var, None)
os.environ.setdefault("GANFORGE_OFFLINE", "1")
# A persistent cache (classifier, reference statistics) shared by the whole test session; one
# per asset mode, so a pass without assets never sees what a pass with them cached.
os.environ.setdefault("GANFORGE_HOME", str(REPO / ".pytest_cache" / ("ganforge-home" if HAVE_ASSETS else "ganforge-home-bare")))
if "OMP_NUM_THREADS" not in os.environ:  # respect an explicit setting (e.g. beside another job)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

ASSETS = SHARED
CONTENT_DIR = SHARED / "images" / "content"
STYLE_DIR = SHARED / "images" / "style"


def latest_checkpoint(run: Path) -> Path:
    """The newest checkpoint file of a training run folder."""
    from ganforge.train import checkpoint

    return checkpoint.list_checkpoints(run / "checkpoints")[-1]


def read_log(run: Path) -> list[dict]:
    """A run's log.jsonl as a list of records."""
    import json

    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def assert_same_run(run_a: Path, run_b: Path, logs: bool = True) -> dict:
    """Assert two runs ended with bit-identical weights (latest checkpoints: same keys, equal
    tensors) and, with ``logs``, the same log records apart from the timing; return run_a's weights."""
    from safetensors.torch import load_file

    a = load_file(str(latest_checkpoint(run_a) / "weights.safetensors"))
    b = load_file(str(latest_checkpoint(run_b) / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if logs:
        def strip(run: Path) -> list[dict]:
            return [{k: v for k, v in r.items() if k != "img_per_s"} for r in read_log(run)]

        assert strip(run_a) == strip(run_b)
    return a


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared asset missing: {path}")
    return path


@pytest.fixture
def assets() -> Path:
    return require(SHARED)


@contextlib.contextmanager
def _intra_op_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One intra-op thread per test: on the shared 2-core machines (several jobs, each with 2 OpenMP
    threads) oversubscribed threads spin at barriers, and a VGG forward+backward measured 3-14x
    slower with 2 threads than with 1. On an idle machine 1 thread costs at most ~2x. Modules use it
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with _intra_op_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """``one_thread`` for module-scoped fixtures (e.g. a network built once per module)."""
    with _intra_op_threads(1):
        yield


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A user's machine: empty cache, no weights folder, network allowed."""
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANFORGE_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("GANFORGE_OFFLINE", raising=False)
    return tmp_path / "home"

"""Test set-up: point ganforge at the shared offline assets (CI sets the same variables), keep the
cache in a per-session temp dir, and limit threads so tests behave on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "assets"  # not resolved: CI names it through ../shared

os.environ.setdefault("GANFORGE_DATA_DIR", str(SHARED / "datasets"))
os.environ.setdefault("GANFORGE_WEIGHTS_DIR", str(SHARED / "weights"))
os.environ.setdefault("GANFORGE_OFFLINE", "1")
# A persistent cache (classifier, reference statistics) shared by the whole test session.
os.environ.setdefault("GANFORGE_HOME", str(REPO / ".pytest_cache" / "ganforge-home"))
if "OMP_NUM_THREADS" not in os.environ:  # respect an explicit setting (e.g. beside another job)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

ASSETS = SHARED
CONTENT_DIR = SHARED / "images" / "content"
STYLE_DIR = SHARED / "images" / "style"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared asset missing: {path}")
    return path


@pytest.fixture
def assets() -> Path:
    return require(SHARED)

"""Where ganforge reads and writes files. Everything is driven by environment variables so that
offline machines (and CI) can point at local copies without touching code.

- ``GANFORGE_HOME``: cache root (default ``~/.cache/ganforge``); downloads land in ``weights/`` and
  ``datasets/`` below it, derived artefacts (classifiers, reference statistics) in ``cache/``.
- ``GANFORGE_WEIGHTS_DIR``: a directory searched first for weight files, by file name.
- ``GANFORGE_DATA_DIR``: a directory searched first for datasets (torchvision layout, e.g.
  ``MNIST/raw/*.gz``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("GANFORGE_HOME", Path.home() / ".cache" / "ganforge")).expanduser()


def cache_dir(kind: str) -> Path:
    """A writable sub-directory of the cache, created on demand (kind: 'weights', 'datasets', ...)."""
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def _env_dir(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def weights_dir() -> Path | None:
    """The user's offline weights directory (``GANFORGE_WEIGHTS_DIR``), if set."""
    return _env_dir("GANFORGE_WEIGHTS_DIR")


def data_dir() -> Path | None:
    """The user's offline dataset directory (``GANFORGE_DATA_DIR``), if set."""
    return _env_dir("GANFORGE_DATA_DIR")

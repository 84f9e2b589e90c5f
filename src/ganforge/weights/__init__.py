"""Named pretrained weights: ``store`` (find, fetch, verify, load: the mechanism) and ``catalog``
(every named file: data only). ``from ganforge.weights import WEIGHTS, resolve, load_into`` and the
rest work as before; importing the package fills the registry from the catalogue."""

from __future__ import annotations

from . import catalog  # noqa: F401  (registers every named file)
from .store import (WEIGHTS, WeightsEntry, check, fetch, find, load_into, load_state_dict, offline_mode,
                    register_weights, resolve)

__all__ = ["WEIGHTS", "WeightsEntry", "check", "fetch", "find", "load_into", "load_state_dict", "offline_mode",
           "register_weights", "resolve", "catalog"]

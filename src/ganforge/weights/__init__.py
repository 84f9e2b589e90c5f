"""Named pretrained weights: ``store`` (find, fetch, verify, load: the mechanism) and ``catalog``
(every named file: data only). ``from ganforge.weights import WEIGHTS, resolve, load_into`` and the
rest work as before; importing the package fills the registry from the catalogue."""

from __future__ import annotations

from ..errors import WeightsError
from . import catalog  # noqa: F401  (registers every named file)
from .store import (WEIGHTS, WeightsEntry, check, fetch, find, load_into, load_state_dict, offline_mode, pin_path,
                    pinned, register_weights, resolve, unpin)

__all__ = ["WeightsError", "WEIGHTS", "WeightsEntry", "check", "fetch", "find", "load_into", "load_state_dict", "offline_mode",
           "register_weights", "resolve", "catalog", "pin_path", "pinned", "unpin"]

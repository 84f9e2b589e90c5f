"""Models stay loaded between requests: a bounded LRU cache (by bytes) shared by the workers.

Entries are built once under a per-key lock (two requests for the same model load it once) and the
cache's own book-keeping is mutated only under the cache lock. Each entry also carries a lock that
a worker holds while it runs the model, so a model object (and its internal style-statistics
cache) is never used by two threads at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


def module_bytes(*objects: Any) -> int:
    """Bytes of the parameters and buffers of the torch modules in ``objects`` (shared ones once)."""
    seen: set[int] = set()
    total = 0
    for obj in objects:
        modules = obj.values() if isinstance(obj, dict) else [obj]
        for module in modules:
            if not isinstance(module, torch.nn.Module):
                continue
            for t in list(module.parameters()) + list(module.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total


@dataclass
class Entry:
    key: tuple
    value: Any
    nbytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    uses: int = 0


class ModelCache:
    """LRU by bytes. ``get(key, build)`` returns the cached :class:`Entry` or builds it with
    ``build() -> (value, nbytes)``; least recently used entries are dropped while the total is over
    ``max_bytes`` (the newest entry always stays, even when it alone is larger)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self.hits = self.misses = self.evictions = 0

    def _hit(self, key: tuple) -> Entry | None:
        """The cached entry, marked most recently used (call with ``self._lock`` held)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def get(self, key: tuple, build: Callable[[], tuple[Any, int]]) -> Entry:
        with self._lock:
            entry = self._hit(key)
            if entry is not None:
                return entry
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:  # one build per key; others wait for it
            with self._lock:
                entry = self._hit(key)
                if entry is not None:
                    return entry
            value, nbytes = build()
            entry = Entry(key, value, int(nbytes))
            with self._lock:
                self.misses += 1
                self._entries[key] = entry
                self._building.pop(key, None)
                self._evict()
            return entry

    def _evict(self) -> None:
        while len(self._entries) > 1 and self.total_bytes > self.max_bytes:
            self._entries.popitem(last=False)
            self.evictions += 1

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._entries

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": [" ".join(map(str, k)) for k in self._entries], "bytes": self.total_bytes,
                    "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses,
                    "evictions": self.evictions}

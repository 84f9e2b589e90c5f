"""A batch source whose images carry a fingerprint: each batch of the wrapped source, fingerprinted
and quantised to 8 bits on its way to the training step (deterministic, so resume stays exact)."""

from __future__ import annotations

import torch

from .pair import Fingerprint


class FingerprintedBatches:
    def __init__(self, inner, fingerprint: Fingerprint, key: str = "image") -> None:
        self.inner, self.fingerprint, self.key = inner, fingerprint, key
        self.count_key = getattr(inner, "count_key", None)

    def get(self, index: int, rank: int, world: int, generator: torch.Generator, device: torch.device):
        batch = dict(self.inner.get(index, rank, world, generator, device))
        batch[self.key] = self.fingerprint.embed(batch[self.key])
        return batch

    def __getattr__(self, name: str):  # the wrapped source's other attributes (sizes, labels)
        if name in ("inner", "fingerprint", "key"):
            raise AttributeError(name)
        return getattr(self.inner, name)

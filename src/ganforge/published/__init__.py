"""Published networks read safely and run exactly: NVIDIA's StyleGAN2-ADA ``.pkl`` files, read
without running any code from them (``unpickle``), on ganforge's own implementation of the
official architecture (``network``), loaded as a :class:`~ganforge.generator.Generator` (``load``); rosinality stylegan2-pytorch ``.pt`` checkpoints mapped onto it (``rosinality``)."""

from __future__ import annotations

from .load import is_published, load_official_pickle, load_published, load_rosinality_pt, published_names
from .network import OfficialGenerator
from .unpickle import PersistentObject, read_official_pickle

__all__ = ["OfficialGenerator", "PersistentObject", "is_published", "load_official_pickle", "load_published",
           "load_rosinality_pt", "published_names", "read_official_pickle"]

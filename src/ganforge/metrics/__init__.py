"""Evaluation metrics with their protocol recorded next to every number (FID, KID, IS,
precision/recall, density/coverage, nearest neighbours, similarity), and ganforge's own
MNIST-domain classifier used as a feature extractor for small greyscale datasets.

Heavy modules are imported lazily so ``import ganforge.metrics`` stays cheap.
"""

from __future__ import annotations

from .classifier import DomainClassifier, load_classifier

__all__ = ["DomainClassifier", "load_classifier", "evaluate", "EvalResult", "InTrainingEvaluator",
           "similarity", "ssim", "get_extractor", "core"]


def __getattr__(name: str):
    if name in ("evaluate", "EvalResult", "write_json", "load_source"):
        from . import evaluation as _ev

        return getattr(_ev, name)
    if name == "InTrainingEvaluator":
        from .intraining import InTrainingEvaluator

        return InTrainingEvaluator
    if name in ("similarity", "ssim"):
        from . import imagesim

        return getattr(imagesim, name)
    if name == "get_extractor":
        from .extractors import get_extractor

        return get_extractor
    raise AttributeError(f"module 'ganforge.metrics' has no attribute {name!r}")

"""Evaluation metrics with their protocol recorded next to every number (FID, KID, IS,
precision/recall, nearest neighbours, similarity), and ganforge's own MNIST-domain classifier."""

from __future__ import annotations

from .classifier import DomainClassifier, load_classifier

__all__ = ["DomainClassifier", "load_classifier"]

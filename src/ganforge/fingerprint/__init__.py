"""Fingerprinted training (issue 21, after Yu et al., "Artificial Fingerprinting for Generative
Models", ICCV 2021): a code is written into every training image by a learnt encoder, so a
generator trained on them draws it too, and the matching decoder reads it back from the
generator's samples (``ganforge provenance --fingerprint RUN``). Unlike the watermark added to the
files ganforge writes, the fingerprint is in the generator's weights: it is in every sample
however the generator is run (an export, ONNX, another program)."""

from .batches import FingerprintedBatches
from .pair import FILE, THRESHOLD, Fingerprint, binomial_p_value, load, parse_code
from .train import psnr, train_fingerprint

__all__ = ["FILE", "THRESHOLD", "Fingerprint", "FingerprintedBatches", "binomial_p_value", "load", "parse_code",
           "psnr", "train_fingerprint"]

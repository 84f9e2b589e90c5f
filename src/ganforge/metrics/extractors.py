"""Feature extractors, each with a protocol record (what network, which weights file and its
sha256, how images are resized and scaled), because a number without them cannot be reproduced.

- ``inception``: torch-fidelity's own ``FeatureExtractorInceptionV3`` network class (so features
  are computed exactly as torch-fidelity computes them: uint8 input, TF1-compatible bilinear resize
  to 299×299, ``(x-128)/128``), with the weights resolved by ``ganforge.weights`` (sha256-checked,
  offline first) instead of torch-fidelity's runtime download. ``inception-fid`` (with the 1008-way
  fc) is preferred; ``inception-fid-nofc`` gives the same pool3 features but no logits (no IS).
- ``mnist`` / ``fashion-mnist``: ganforge's domain classifier (penultimate 128-d layer, logits).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from .. import weights
from ..errors import GanforgeError, WeightsError

EXTRACTORS = ("inception", "mnist", "fashion-mnist", "digits")


@dataclass
class Features:
    features: torch.Tensor  # N×D float32
    logits: torch.Tensor | None  # N×K float32, or None when the network has no classifier


class Extractor:
    """Base: ``extract(uint8 N×C×H×W) -> Features`` in batches, without gradients."""

    name: str
    dim: int
    has_logits: bool
    batch_size: int = 64
    device: torch.device = torch.device("cpu")

    def _module(self) -> torch.nn.Module:
        raise NotImplementedError

    def to(self, device: torch.device) -> "Extractor":
        """Run the network on ``device`` (features always come back as CPU float32)."""
        if torch.device(device) != self.device:
            self._module().to(device)
            self.device = torch.device(device)
        return self

    def protocol(self) -> dict:
        raise NotImplementedError

    def cache_key(self) -> str:
        """A short string that changes whenever the features would change."""
        p = self.protocol()
        return f"{self.name}-{p.get('weights_sha256', '')[:16]}"

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    @torch.no_grad()
    def extract(self, images: torch.Tensor, *, batch_size: int | None = None, progress: bool = False,
                desc: str = "features") -> Features:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"extractors take uint8 N×C×H×W images, got {images.dtype} {tuple(images.shape)}")
        from tqdm.auto import tqdm

        bs = batch_size or self.batch_size
        feats, logits = [], []
        with tqdm(total=len(images), desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, len(images), bs):
                f, lg = self._batch(images[start:start + bs].to(self.device))
                feats.append(f.float().cpu())
                if lg is not None:
                    logits.append(lg.float().cpu())
                bar.update(min(bs, len(images) - start))
        dim_logits = None if not logits else torch.cat(logits)
        return Features(torch.cat(feats) if feats else torch.empty(0, self.dim), dim_logits)


@contextlib.contextmanager
def _tf_loader_returns(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """Make torch-fidelity's constructor take our resolved state dict instead of downloading, and
    leave the loading to ``weights.load_into``: torch's own strict load would reject a file with a
    renamed or missing key as a multi-line RuntimeError before ganforge's one-line check ran."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    cls = tfi.FeatureExtractorInceptionV3
    original, original_load = tfi.load_state_dict_from_url, cls.load_state_dict
    tfi.load_state_dict_from_url = lambda *args, **kwargs: state
    cls.load_state_dict = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        tfi.load_state_dict_from_url = original
        cls.load_state_dict = original_load


def inception_weights_name() -> str:
    """``inception-fid`` if present or downloadable, else the local ``inception-fid-nofc`` stand-in."""
    if weights.find("inception-fid") is not None:
        return "inception-fid"
    if weights.find("inception-fid-nofc") is not None:
        return "inception-fid-nofc"
    return "inception-fid"  # resolve() will download it, or explain what to do offline


class InceptionExtractor(Extractor):
    name = "inception"
    dim = 2048
    batch_size = 32

    def __init__(self, weights_name: str | None = None) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.weights_name = weights_name or inception_weights_name()
        entry = weights.WEIGHTS.get(self.weights_name)
        path = weights.resolve(self.weights_name)  # sha256-checked
        state = weights.load_state_dict(path)
        self.has_logits = "fc.weight" in state
        full = dict(state)
        if not self.has_logits:
            full["fc.weight"] = torch.zeros(1008, 2048)
            full["fc.bias"] = torch.zeros(1008)
        features = ["2048", "logits_unbiased"] if self.has_logits else ["2048"]
        with _tf_loader_returns(full):
            net = FeatureExtractorInceptionV3("inception-v3-compat", features)
        # Assert the file fits exactly; the only keys allowed to be absent are the fc layer's.
        weights.load_into(net, state, source=str(path), allowed_missing=entry.expected_missing)
        if not self.has_logits:
            net.fc.weight.fill_(float("nan"))  # any accidental use of logits is visibly wrong
            net.fc.bias.fill_(float("nan"))
        self.net = net.eval()
        self.path = path
        self.sha256 = weights.sha256_file(path) if len(entry.sha256) < 64 else entry.sha256

    def _module(self) -> torch.nn.Module:
        return self.net

    def protocol(self) -> dict:
        return {
            "extractor": "inception",
            "network": "torch-fidelity FeatureExtractorInceptionV3 (pytorch-fid / TF inception-2015-12-05)",
            "layer": "pool3 (2048)" + (", logits_unbiased (1008) for IS" if self.has_logits else ""),
            "weights": self.weights_name,
            "weights_file": self.path.name,
            "weights_sha256": self.sha256,
            "resize": "uint8 -> TF1-compatible bilinear (align_corners=False) to 299x299, then (x-128)/128",
            "grayscale": "replicated to 3 channels",
        }

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise GanforgeError(f"inception needs 1- or 3-channel images, got {images.shape[1]} channels")
        out = self.net(images.contiguous())
        return (out[0], out[1]) if self.has_logits else (out[0], None)


class DomainExtractor(Extractor):
    dim = 128
    has_logits = True
    batch_size = 500

    def __init__(self, dataset: str, progress: bool = True) -> None:
        from . import classifier

        self.model = classifier.load_classifier(dataset, progress=progress)
        self.name = self.model.dataset
        self.path = classifier.cache_path(self.name)
        self.sha256 = weights.sha256_file(self.path)

    def _module(self) -> torch.nn.Module:
        return self.model

    def protocol(self) -> dict:
        from . import classifier

        return {
            "extractor": self.name,
            "network": f"ganforge DomainClassifier {classifier.VERSION} trained on {self.name}:train",
            "layer": "penultimate (128, after ReLU); logits (10) for IS",
            "weights_file": self.path.name,
            "weights_sha256": self.sha256,
            "classifier_test_accuracy": round(self.model.test_accuracy, 4),
            "resize": "uint8/255 -> RGB averaged to grey -> bilinear (align_corners=False) to 32x32, (x-0.5)/0.5",
        }

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = self.model.features_and_logits(images.float() / 255.0)
        return feats, logits


_MEMO: dict[str, Extractor] = {}


def get_extractor(name: str, *, progress: bool = True, device: str | torch.device | None = None) -> Extractor:
    """A (memoised) extractor by name: 'inception', 'mnist' or 'fashion-mnist', on ``device``
    (default: where it is, the CPU at first; 'auto' picks CUDA when available)."""
    name = name.lower()
    if name not in EXTRACTORS:
        raise GanforgeError(f"unknown feature extractor {name!r}; choose one of: {', '.join(EXTRACTORS)}, auto")
    if name not in _MEMO:
        if name == "inception":
            try:
                _MEMO[name] = InceptionExtractor()
            except WeightsError as exc:
                raise WeightsError(f"{exc} (or use --extractor mnist|fashion-mnist|digits for MNIST-like data)") from exc
        else:
            _MEMO[name] = DomainExtractor(name, progress=progress)
    if device is not None:
        from ..device import resolve_device

        _MEMO[name].to(resolve_device(device))
    return _MEMO[name]


def auto_extractor(*sources: str) -> str:
    """'fashion-mnist' / 'mnist' / 'digits' when a source is that dataset, else 'inception'."""
    for src in sources:
        base = str(src).lower().partition(":")[0]
        if base in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
            return "fashion-mnist"
        if base in ("mnist", "digits"):
            return base
    return "inception"

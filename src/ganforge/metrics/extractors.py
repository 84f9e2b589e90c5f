"""Feature extractors, each with a protocol record (what network, which weights file and its
sha256, how images are resized and scaled), because a number without them cannot be reproduced.

- ``inception``: torch-fidelity's own ``FeatureExtractorInceptionV3`` network class (so features
  are computed exactly as torch-fidelity computes them: uint8 input, TF1-compatible bilinear resize
  to 299×299, ``(x-128)/128``), with the weights resolved by ``ganforge.weights`` (sha256-checked,
  offline first) instead of torch-fidelity's runtime download. ``inception-fid`` (with the 1008-way
  fc) is preferred; ``inception-fid-nofc`` gives the same pool3 features but no logits (no IS).
  By default (``fast=True``) the same weights run through :class:`_FastInception`: the TF1 resize
  done separably on one channel for grey images (bit-identical to torch-fidelity's), every
  conv+BatchNorm folded into one biased conv (exact up to fp32 rounding), channels_last
  activations and ``torch.inference_mode`` -- the features match torch-fidelity's to ~1e-5 (FID
  to well under 1e-3) about 1.6x faster on a CPU (docs/benchmarks.md). ``fast=False`` runs torch-fidelity's
  module itself, bit-identical to torch-fidelity.
- ``mnist`` / ``fashion-mnist``: ganforge's domain classifier (penultimate 128-d layer, logits).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from .. import weights
from ..download import sha256_file
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

    def __init__(self, weights_name: str | None = None, *, fast: bool = True, precision: str = "fp32") -> None:
        """``fast=False``: torch-fidelity's own module (bit-identical to torch-fidelity, about 1.6x slower).
        ``precision``: ``fp32`` (default; the path that agrees with torch-fidelity),
        or ``auto``/``bf16`` for bf16 autocast on the fast path (resolved by
        :func:`ganforge.device.resolve_precision`; ~1.5x faster again on CPUs with native bf16 but the
        features move by ~2 %, so FID no longer agrees with torch-fidelity to 1e-3 -- see
        benchmarks/bench_features.py)."""
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        from ..device import PRECISIONS

        if precision not in PRECISIONS:
            raise GanforgeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and not fast:
            raise GanforgeError("a reduced precision needs the fast Inception path (fast=True)")
        self.fast, self.precision = fast, precision
        self._fast_net: _FastInception | None = None

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
        self.sha256 = sha256_file(path) if len(entry.sha256) < 64 else entry.sha256

    def _module(self) -> torch.nn.Module:
        return self.net

    def to(self, device: torch.device) -> "InceptionExtractor":
        if torch.device(device) != self.device:
            self._fast_net = None  # rebuilt from the moved network on first use
        super().to(device)
        return self

    def _resolved_precision(self) -> str:
        if self.precision == "fp32":
            return "fp32"
        from ..device import resolve_precision

        return resolve_precision(self.precision, self.device)

    def cache_key(self) -> str:
        # The fast fp32 path gives the same features up to fp32 rounding: same key. bf16 does not.
        precision = self._resolved_precision()
        return super().cache_key() + ("" if precision == "fp32" else f"-{precision}")

    def protocol(self) -> dict:
        precision = self._resolved_precision()
        path = ("torch-fidelity module as is (bit-identical)" if not self.fast else
                "ganforge fast path: conv+BN folded, channels_last, separable TF1 resize"
                + (f", {precision} autocast" if precision != "fp32" else " (fp32; matches torch-fidelity to ~1e-5)"))
        return {
            "extractor": "inception",
            "path": path,
            "network": "torch-fidelity FeatureExtractorInceptionV3 (pytorch-fid / TF inception-2015-12-05)",
            "layer": "pool3 (2048)" + (", logits_unbiased (1008) for IS" if self.has_logits else ""),
            "weights": self.weights_name,
            "weights_file": self.path.name,
            "weights_sha256": self.sha256,
            "resize": "uint8 -> TF1-compatible bilinear (align_corners=False) to 299x299, then (x-128)/128",
            "grayscale": "replicated to 3 channels",
        }

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.shape[1] not in (1, 3):
            raise GanforgeError(f"inception needs 1- or 3-channel images, got {images.shape[1]} channels")
        if not self.fast:
            images = images.expand(-1, 3, -1, -1)
            out = self.net(images.contiguous())
            return (out[0], out[1]) if self.has_logits else (out[0], None)
        if self._fast_net is None:
            self._fast_net = _FastInception(self.net)
        from ..device import autocast

        # inference_mode inside only: the (small) outputs are cloned into ordinary tensors, so callers
        # may still modify them in place or use them with autograd.
        with torch.inference_mode(), autocast(self._resolved_precision(), self.device):
            feats, logits = self._fast_net(images, logits=self.has_logits)
        return feats.float().clone(), None if logits is None else logits.float().clone()


def _resize_like_torch_fidelity(images: torch.Tensor, size: int) -> torch.Tensor:
    """torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x(x.float(), align_corners=False)``
    (its default 'slow' method, the one its Inception uses), bit for bit, computed separably: the
    x-interpolation runs once per *input* row instead of twice per output row, and the gathers read
    uint8. Every output value is made by the same float32 operations in the same order
    (``in_0 = in_00 + (in_01 - in_00) * dx``, same for ``in_1``, ``out = in_0 + (in_1 - in_0) * dy``),
    so the result is identical, not just close."""
    device = images.device

    def grid(in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.arange(0, size, 1, dtype=torch.float32, device=device) * torch.tensor(in_size / size, dtype=torch.float32)
        lo = g.long()
        return lo, (lo + 1).clamp_max(in_size - 1), g - lo.float()

    x_lo, x_hi, dx = grid(images.shape[3])
    y_lo, y_hi, dy = grid(images.shape[2])
    left = images.index_select(3, x_lo).float()
    rows = left + (images.index_select(3, x_hi).float() - left) * dx  # N×C×H_in×size
    top = rows.index_select(2, y_lo)
    return top + (rows.index_select(2, y_hi) - top) * dy.view(size, 1)


class _FoldedConv(torch.nn.Module):
    """A torch-fidelity ``BasicConv2d`` (conv without bias -> eval BatchNorm(eps=1e-3) -> ReLU) as one
    biased conv + ReLU: ``w' = w * gamma / sqrt(var + eps)``, ``b' = beta - mean * gamma / sqrt(var + eps)``,
    computed in float64 then rounded once, so the only change is fp32 rounding order."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        conv, bn = block.conv, block.bn
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        self.weight = torch.nn.Parameter(
            (conv.weight.double() * scale.view(-1, 1, 1, 1)).float().contiguous(memory_format=torch.channels_last),
            requires_grad=False)
        self.bias = torch.nn.Parameter((bn.bias.double() - bn.running_mean.double() * scale).float(),
                                       requires_grad=False)
        self.stride, self.padding = conv.stride, conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, self.padding).relu_()


def _fold(module: torch.nn.Module) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    for name, child in module.named_children():
        if isinstance(child, BasicConv2d):
            setattr(module, name, _FoldedConv(child))
        else:
            _fold(child)
    return module


class _FastInception(torch.nn.Module):
    """torch-fidelity's FeatureExtractorInceptionV3 forward for the pool3 ('2048') and
    'logits_unbiased' outputs, on a folded channels_last copy of its layers (its Mixed blocks are
    reused as they are, with their BasicConv2d children swapped for :class:`_FoldedConv`)."""

    STAGES = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
              "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
              "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")

    def __init__(self, net: torch.nn.Module) -> None:
        import copy

        super().__init__()
        self.size = net.INPUT_IMAGE_SIZE
        self.stages = torch.nn.Sequential(*(_fold(copy.deepcopy(getattr(net, name))) for name in self.STAGES))
        self.stages.eval().requires_grad_(False)
        self.fc_weight_t = net.fc.weight.detach().t()  # shared with net, not copied

    def forward(self, images: torch.Tensor, *, logits: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = _resize_like_torch_fidelity(images, self.size)  # grey stays 1 channel until here
        x = (x - 128) / 128
        x = x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
        x = self.stages(x)
        feats = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1).float()
        return feats, (feats.float().mm(self.fc_weight_t) if logits else None)


class DomainExtractor(Extractor):
    dim = 128
    has_logits = True
    batch_size = 500

    def __init__(self, dataset: str, progress: bool = True) -> None:
        from . import classifier

        self.model = classifier.load_classifier(dataset, progress=progress)
        self.name = self.model.dataset
        self.path = classifier.cache_path(self.name)
        self.sha256 = sha256_file(self.path)

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

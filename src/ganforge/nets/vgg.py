"""VGG19 feature encoders in the two key layouts that published weights use.

- ``"torchvision"``: ``features.N`` indices of ``torchvision.models.vgg19().features`` (zero
  padding, floor max-pooling). Used by ``vgg19-torchvision``, ``vgg19-caffe`` and
  ``vgg19-caffe-neuralstyle``.
- ``"adain"``: the flat ``N.weight`` layout of pytorch-AdaIN's ``vgg_normalised.pth`` (a 1×1 input
  conv, reflection padding, ceil max-pooling). Used by ``vgg-normalised-adain``.

Input normalisation differs per file and is applied inside the encoder (callers always pass RGB in
[0, 1]): ``imagenet`` (torchvision: RGB, ImageNet mean/std), ``caffe`` (RGB on 0..255 minus the
Caffe mean; the offline ``vgg19-caffe`` conversion, whose first layer was flipped to RGB), and
``caffe-bgr`` (the original Caffe convention: channels reversed to BGR, 0..255 minus the BGR mean;
``vgg19-caffe-neuralstyle``).

Only conv1_1..conv5_1 are built: style transfer never needs deeper layers, and the keys of deeper
layers present in a file are dropped *by name* (any other unknown key is an error).
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import torch
from torch import nn

from ..errors import WeightsError

# (block, index-in-block, out-channels) for conv1_1 .. conv5_1; pools after the last conv of 1..4.
_CONVS = [(1, 1, 64), (1, 2, 64), (2, 1, 128), (2, 2, 128), (3, 1, 256), (3, 2, 256), (3, 3, 256),
          (3, 4, 256), (4, 1, 512), (4, 2, 512), (4, 3, 512), (4, 4, 512), (5, 1, 512)]
_BLOCK_LAST = {1: 2, 2: 2, 3: 4, 4: 4}

NORMALISATIONS = ("caffe", "caffe-bgr", "imagenet", "none")
LAYERS = tuple(f"relu{b}_{i}" for b, i, _ in _CONVS)

_CAFFE_MEAN = (123.68, 116.779, 103.939)  # R, G, B
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _build(layout: str) -> tuple[nn.Sequential, dict[str, int]]:
    """The layer list and a map ``reluB_I -> index of that ReLU`` for one layout."""
    modules: list[nn.Module] = []
    index: dict[str, int] = {}
    channels = 3
    if layout == "adain":
        modules.append(nn.Conv2d(3, 3, 1))
    elif layout != "torchvision":
        raise WeightsError(f"unknown VGG layout {layout!r}; use 'torchvision' or 'adain'")
    for block, i, out in _CONVS:
        if layout == "adain":
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(channels, out, 3)]
        else:
            modules.append(nn.Conv2d(channels, out, 3, padding=1))
        modules.append(nn.ReLU())
        index[f"relu{block}_{i}"] = len(modules) - 1
        channels = out
        if _BLOCK_LAST.get(block) == i:
            modules.append(nn.MaxPool2d(2, 2, ceil_mode=(layout == "adain")))
    return nn.Sequential(*modules), index


# Keys of the published files that belong to layers we never build (conv5_2 .. conv5_4, classifier).
_DROPPABLE = {
    "torchvision": ("features.30.", "features.32.", "features.34.", "classifier."),
    "adain": ("45.", "48.", "51."),
}


class VGGEncoder(nn.Module):
    """Frozen VGG19 (conv1_1..relu5_1) taking RGB in [0, 1]; it applies its own input normalisation
    so that callers never need to know which convention the weights were trained with."""

    def __init__(self, layout: str = "torchvision", normalisation: str = "caffe") -> None:
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise WeightsError(f"unknown normalisation {normalisation!r}; use one of {NORMALISATIONS}")
        self.layout = layout
        self.normalisation = normalisation
        self.features, self.index = _build(layout)
        self.source = "random"
        self.requires_grad_(False)
        self.eval()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalisation == "caffe":
            mean = x.new_tensor(_CAFFE_MEAN).view(1, 3, 1, 1)
            return x * 255.0 - mean
        if self.normalisation == "caffe-bgr":  # channel 0 = blue, minus the BGR mean
            mean = x.new_tensor(_CAFFE_MEAN[::-1]).view(1, 3, 1, 1)
            return x.flip(1) * 255.0 - mean
        if self.normalisation == "imagenet":
            return (x - x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return x

    def forward(self, x: torch.Tensor, layers: Sequence[str] = ("relu4_1",)) -> dict[str, torch.Tensor]:
        """Features at ``layers`` (names like ``relu3_1``); stops at the deepest one requested."""
        wanted = {}
        for name in layers:
            if name not in self.index:
                raise WeightsError(f"unknown VGG layer {name!r}; choose from {', '.join(LAYERS)}")
            wanted[self.index[name]] = name
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.normalise(x)
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h
            if i == last:
                break
        return out

    def encode(self, x: torch.Tensor, layer: str = "relu4_1") -> torch.Tensor:
        return self(x, (layer,))[layer]

    # -- loading -------------------------------------------------------------------------------

    def file_state(self) -> dict[str, torch.Tensor]:
        """This encoder's weights with the key names its layout's published files use."""
        state = self.features.state_dict()
        prefix = "features." if self.layout == "torchvision" else ""
        return {prefix + k: v for k, v in state.items()}

    def load_file_state(self, state: dict[str, torch.Tensor], *, source: str,
                        allowed_missing: Iterable[str] = ()) -> None:
        """Strictly load a state dict in this layout's published key names."""
        from ..weights import load_into

        prefix = "features." if self.layout == "torchvision" else ""
        drop = _DROPPABLE[self.layout]
        kept = {}
        for key, value in state.items():
            if key.startswith(drop):
                continue
            if not key.startswith(prefix):
                raise WeightsError(f"{source}: key {key!r} does not belong to a VGG19 in the {self.layout} layout")
            kept[key[len(prefix):]] = value
        load_into(self.features, kept, source=source, allowed_missing=allowed_missing)
        self.source = source


# name -> (layout, normalisation) of the registered encoders
ENCODERS = {
    "vgg19-caffe": ("torchvision", "caffe"),
    "vgg19-caffe-neuralstyle": ("torchvision", "caffe-bgr"),
    "vgg19-torchvision": ("torchvision", "imagenet"),
    "vgg-normalised-adain": ("adain", "none"),
}

# The encoder used when none is named (Gatys, the similarity report, train-style): downloadable
# from an official URL with a published hash. ``vgg19-caffe`` is the offline alternative.
DEFAULT_ENCODER = "vgg19-torchvision"
# Encoders a VGG-only method can use, best first (what the demo looks for locally).
GATYS_ENCODERS = ("vgg19-torchvision", "vgg19-caffe-neuralstyle", "vgg19-caffe")

# Gatys' default style weight depends on the feature scale: Caffe-scale inputs (0..255) give
# features ~50-100x larger than ImageNet-normalised ones, and the Gram loss grows with the 4th
# power of the features but the content loss with the 2nd. 30 was tuned on vgg19-caffe
# (docs/style.md); 1e6 is the PyTorch tutorial's value for torchvision's VGG19 with the same Gram
# (divided by C*H*W) and MSE losses.
GATYS_STYLE_WEIGHT = {"caffe": 30.0, "caffe-bgr": 30.0, "imagenet": 1e6, "none": 30.0}


def pick_encoder() -> str:
    """The encoder for a method that needs only a VGG19 (Gatys, the similarity report) when none is
    named: :data:`DEFAULT_ENCODER` when it is on this machine; otherwise another VGG19 that is (for
    example ``vgg19-caffe`` in GANFORGE_WEIGHTS_DIR); otherwise :data:`DEFAULT_ENCODER`, which is
    then downloaded (or names the one command that fetches it)."""
    from ..weights import find

    for name in GATYS_ENCODERS:
        if find(name) is not None:
            return name
    return DEFAULT_ENCODER


def default_style_weight(encoder: nn.Module) -> float:
    return GATYS_STYLE_WEIGHT.get(getattr(encoder, "normalisation", "caffe"), 30.0)


def guess_layout(state: dict[str, torch.Tensor]) -> str:
    if "features.0.weight" in state:
        return "torchvision"
    if "0.weight" in state and tuple(state["0.weight"].shape) == (3, 3, 1, 1):
        return "adain"
    raise WeightsError("not a VGG19 state dict: expected keys features.0.weight (torchvision) or a 1x1 0.weight (AdaIN)")


def load_vgg(name_or_path: str | os.PathLike = DEFAULT_ENCODER, *, normalisation: str | None = None) -> VGGEncoder:
    """A frozen encoder from a registered name (layout and normalisation known) or a file path
    (a registered file name gets that entry's normalisation; otherwise the layout is guessed from
    the keys and ``normalisation`` defaults to 'caffe' for the torchvision layout)."""
    from ..weights import load_state_dict

    state = load_state_dict(name_or_path)
    name = str(name_or_path)
    from pathlib import Path

    from ..weights import WEIGHTS

    by_file = {WEIGHTS.get(n).filename: n for n in ENCODERS if n in WEIGHTS}
    if name not in ENCODERS and Path(name).name in by_file:  # a registered file given by path
        name_for_layout = by_file[Path(name).name]
    else:
        name_for_layout = name
    if name_for_layout in ENCODERS:
        layout, norm = ENCODERS[name_for_layout]
    else:
        layout = guess_layout(state)
        norm = "none" if layout == "adain" else "caffe"
    encoder = VGGEncoder(layout, normalisation or norm)
    encoder.load_file_state(state, source=name)
    return encoder

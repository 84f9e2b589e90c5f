"""The AdaIN decoder: a mirror of VGG19 from a feature layer back to RGB.

For ``relu4_1`` the module list (and therefore the ``N.weight`` keys) is exactly pytorch-AdaIN's
``decoder.pth`` layout: reflection padding, 3×3 convs, ReLU, nearest ×2 upsampling. Shallower
layers (for multi-level WCT) drop the first blocks of that same mirror.
"""

from __future__ import annotations

import json
import os

from torch import nn

from ..errors import WeightsError

# (in, out) per conv of the relu4_1 decoder, with "U" for an upsampling step after the conv's ReLU.
_PLAN = [(512, 256), "U", (256, 256), (256, 256), (256, 256), (256, 128), "U", (128, 128),
         (128, 64), "U", (64, 64), (64, 3)]
# where a decoder for a shallower layer starts in _PLAN, and its input channels
_STARTS = {"relu4_1": 0, "relu3_1": 2, "relu2_1": 7, "relu1_1": 10}
CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}


class AdaINDecoder(nn.Sequential):
    """Decoder from ``layer`` features to an RGB image (no final activation, as in the paper)."""

    def __init__(self, layer: str = "relu4_1") -> None:
        if layer not in _STARTS:
            raise WeightsError(f"no decoder design for {layer!r}; use one of {', '.join(_STARTS)}")
        modules: list[nn.Module] = []
        plan = _PLAN[_STARTS[layer]:]
        for n, item in enumerate(plan):
            if item == "U":
                modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            cin, cout = item
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            if n != len(plan) - 1:
                modules.append(nn.ReLU())
        super().__init__(*modules)
        self.layer = layer
        self.encoder_name = ""


def load_decoder(name_or_path: str | os.PathLike, layer: str | None = None) -> AdaINDecoder:
    """Load a decoder strictly (registry name, ``.pth`` or ganforge ``.safetensors``). The feature
    layer comes from ``layer``, else from a ganforge file's metadata, else relu4_1."""
    from ..weights import load_into, load_state_dict, resolve

    state = load_state_dict(name_or_path)
    path = resolve(name_or_path)
    meta: dict = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
    stored = meta.get("layer")
    if layer and stored and layer != stored:
        raise WeightsError(f"{path} is a decoder for {stored}, not {layer}")
    decoder = AdaINDecoder(layer or stored or "relu4_1")
    load_into(decoder, state, source=str(name_or_path))
    decoder.encoder_name = meta.get("encoder", "")
    decoder.requires_grad_(False)
    return decoder.eval()


def save_decoder(decoder: AdaINDecoder, path: str | os.PathLike, *, encoder: str, half: bool = True,
                 card: dict | None = None) -> None:
    """Write a decoder as safetensors (fp16 by default) with the encoder it was trained for."""
    from safetensors.torch import save_file

    state = {k: (v.half() if half else v.float()).contiguous() for k, v in decoder.state_dict().items()}
    meta = {"encoder": encoder, "layer": decoder.layer, "format": "ganforge-adain-decoder"}
    if card:
        meta["card"] = json.dumps(card)
    save_file(state, str(path), metadata=meta)

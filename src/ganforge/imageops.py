"""Low-level image tensor operations shared by the style, translate and restore packages.

Only torch and :mod:`ganforge.errors` are imported here, so any package may use this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import GanforgeError

PAD_SMALL = ("reflect", "replicate")


def pad_to_multiple(x: torch.Tensor, multiple: int, *, small: str = "reflect") -> torch.Tensor:
    """Pad ``x`` (…×H×W) bottom/right by reflection until H and W are multiples of ``multiple``;
    crop the result back to the original size with :func:`crop_to`.

    Reflection needs a pad smaller than the image side; ``small`` says what happens otherwise:
    ``"reflect"`` grows the image in reflection steps (a 100 px input to a U-Net-256 reflects 99 px,
    then 57; a 1 px side is replicated); ``"replicate"`` replicates the whole pad, on both sides,
    whenever one reflection would not do."""
    if small not in PAD_SMALL:
        raise GanforgeError(f"pad_to_multiple: small must be one of {', '.join(PAD_SMALL)}, got {small!r}")
    h, w = x.shape[-2:]
    th, tw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if small == "replicate":
        if th > h or tw > w:
            mode = "reflect" if th - h < h and tw - w < w else "replicate"
            x = F.pad(x, (0, tw - w, 0, th - h), mode=mode)
        return x
    while x.shape[-2] < th or x.shape[-1] < tw:
        h, w = x.shape[-2:]
        ph, pw = min(th - h, h - 1), min(tw - w, w - 1)
        if ph == 0 and pw == 0:
            return F.pad(x, (0, tw - w, 0, th - h), mode="replicate")
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left ``size`` (H, W) of ``x``: undoes :func:`pad_to_multiple` (also on an output
    that kept the input's geometry)."""
    return x[..., : size[0], : size[1]]

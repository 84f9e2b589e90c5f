"""Text encoders by name: a sentence in, one embedding out.

Every encoder is a ``TextEncoder`` (a ``torch.nn.Module``):

- ``name`` (its registry name) and ``dim`` (the embedding size);
- ``encode(texts) -> Tensor[N, dim]``, float32, on the encoder's device, **L2-normalised** (unit
  length: cosine similarity is a dot product; multiply by ``sqrt(dim)`` for unit-variance inputs);
  no gradient flows (encoders are frozen once trained);
- ``config()``: a JSON-able dict that, with ``state_dict()``, restores the encoder through
  :func:`load_text_encoder` (a run checkpoints both);
- ``.to(device, precision)`` as every ganforge family object (``ganforge.device`` resolves both).

``TEXT_ENCODERS`` maps names (``builtin``, ``clip``) to classes; :func:`build_text_encoder`
makes an untrained/unloaded one, :func:`load_text_encoder` restores one from a checkpoint. The
encoder modules register themselves; the package ``ganforge.text`` imports them all, so importing
anything from it fills the registry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..device import resolve_device, resolve_precision
from ..errors import GanforgeError
from ..registry import Registry

TEXT_ENCODERS: Registry[type["TextEncoder"]] = Registry("text encoder")
ENCODER_NAMES = ("builtin", "clip")


class TextEncoder(nn.Module):
    """Base class; subclasses set ``name``, ``dim`` and implement ``encode`` and ``config``."""

    name: str = ""
    dim: int = 0
    normalized: bool = True  # encode() returns unit-length rows

    def __init__(self) -> None:
        super().__init__()
        self.device = torch.device("cpu")
        self.precision = "fp32"

    def encode(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TextEncoder":  # pragma: no cover - abstract
        raise NotImplementedError

    def to(self, device: str | torch.device = "auto", precision: str = "auto", *args, **kwargs) -> "TextEncoder":
        """Run on ``device`` under ``precision`` (resolved by ``ganforge.device``; the embeddings are
        float32 either way). A dtype or tensor argument is handed to ``nn.Module.to`` unchanged."""
        if isinstance(device, torch.Tensor) or isinstance(device, torch.dtype) or args or kwargs:
            return super().to(device, *args, **kwargs)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        super().to(self.device)
        return self

    def check_texts(self, texts) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise GanforgeError(f"{self.name} text encoder: encode() takes a list of strings")
        return texts


def register_text_encoder(name: str):
    """Class decorator: ``@register_text_encoder("builtin")``."""
    def decorator(cls: type[TextEncoder]) -> type[TextEncoder]:
        cls.name = name
        TEXT_ENCODERS.register(name, cls)
        return cls

    return decorator


def build_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """A new encoder by name. ``builtin`` needs ``vocab`` (BPE ids) or is made by
    ``train_builtin_encoder``; ``clip`` loads its weights through the weights store."""
    return TEXT_ENCODERS.get(name)(**kwargs)


def load_text_encoder(config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> TextEncoder:
    """Restore an encoder from its ``config()`` and ``state_dict()`` (as a run checkpoints them)."""
    if not isinstance(config, dict) or "name" not in config:
        raise GanforgeError("text encoder config must be a dict with a 'name' (as TextEncoder.config() gives)")
    encoder = TEXT_ENCODERS.get(config["name"]).from_config(config)
    state = state_dict or {}
    own = encoder.state_dict()
    if set(own) != set(state):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise GanforgeError(f"{config['name']} text encoder state does not match its config (missing: "
                            f"{', '.join(missing[:3]) or 'none'}; unexpected: {', '.join(extra[:3]) or 'none'})")
    if state:
        encoder.load_state_dict(state)
    encoder.eval()
    return encoder

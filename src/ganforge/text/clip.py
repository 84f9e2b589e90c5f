"""The ``clip`` text encoder: CLIP's text tower through open_clip.

Weights: by default OpenAI's ViT-B/32 (weights store entry ``clip-vit-b-32-openai``: the official
URL, sha256-checked, found in ``GANFORGE_WEIGHTS_DIR`` or the cache, downloaded on first use unless
``GANFORGE_OFFLINE=1``, which gives one line saying where to put the file). Any open_clip model
folder works too: ``model="local-dir:PATH"`` with ``open_clip_config.json`` (its ``model_cfg``)
and ``open_clip_model.safetensors`` / ``open_clip_pytorch_model.bin`` — open_clip's own layout.

Tokenisation: ``open_clip.get_tokenizer`` (CLIP BPE, 77-token context; longer captions are cut
there). ``encode`` gives unit-length ``embed_dim`` vectors (512 for ViT-B/32); ``encode_images``
the matching image embeddings (CLIP score, R-precision with CLIP).

The CLIP network is frozen and held outside the module's parameters: ``state_dict()`` is empty and
a run's checkpoint stores only ``config()`` (model and weights name, with the sha256 checked when
the weights are found again), not 600 MB of CLIP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import GanforgeError, WeightsError
from .encoder import TextEncoder, register_text_encoder

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_WEIGHTS = "clip-vit-b-32-openai"
LOCAL = "local-dir:"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _weights_path(weights: str) -> Path:
    from .. import paths
    from ..weights.store import WEIGHTS, offline_mode, resolve

    try:
        return resolve(weights)
    except WeightsError:
        if not offline_mode() or Path(weights).suffix:
            raise
        entry = WEIGHTS.get(weights)
        where = paths.weights_dir() or paths.home() / "weights"
        raise WeightsError(f"CLIP weights {entry.name} ({entry.filename}) not available offline (GANFORGE_OFFLINE=1); "
                           f"put the file from {entry.url} in {where} or use --text-encoder builtin") from None


def _load(model: str, weights: str | None):
    """(open_clip model in eval mode on the CPU, its tokenizer, image size)."""
    import open_clip
    from safetensors import SafetensorError

    try:
        if model.startswith(LOCAL):
            folder = Path(model[len(LOCAL):]).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise WeightsError(f"{folder} is not an open_clip model folder (no open_clip_config.json)")
            net = open_clip.create_model(f"{LOCAL}{folder}", device="cpu", pretrained_text=False,
                                         require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(f"{LOCAL}{folder}")
        else:
            path = _weights_path(weights or DEFAULT_WEIGHTS)
            net = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
            tokenizer = open_clip.get_tokenizer(model)
    except GanforgeError:
        raise
    except (RuntimeError, ValueError, KeyError, OSError, SafetensorError) as exc:
        raise WeightsError(f"could not load CLIP {model} ({weights or 'local folder'}): "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    net.eval().requires_grad_(False)
    size = getattr(getattr(net, "visual", None), "image_size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    return net, tokenizer, size


@register_text_encoder("clip")
class ClipTextEncoder(TextEncoder):
    """CLIP's text (and image) tower, frozen; ``model`` an open_clip name (with ``weights`` a weights
    store name or file) or ``local-dir:PATH``."""

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | None = DEFAULT_WEIGHTS, **_: Any) -> None:
        super().__init__()
        if model != DEFAULT_MODEL and not model.startswith(LOCAL):
            raise GanforgeError(f"clip text encoder: model must be {DEFAULT_MODEL} (OpenAI weights) or "
                                f"{LOCAL}PATH (an open_clip model folder), got {model!r}")
        self.model_name, self.weights = model, (None if model.startswith(LOCAL) else weights)
        net, tokenizer, size = _load(model, self.weights)
        object.__setattr__(self, "net", net)  # not a submodule: frozen, not in state_dict()
        self.tokenizer, self.image_size = tokenizer, size
        self.dim = int(net.text_projection.shape[1]) if hasattr(net, "text_projection") and \
            isinstance(net.text_projection, torch.Tensor) else int(net.encode_text(tokenizer(["a"])).shape[1])

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_name, "weights": self.weights, "dim": self.dim,
                "normalized": True, "tokenizer": "open_clip.get_tokenizer (CLIP BPE, 77 tokens)"}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ClipTextEncoder":
        return cls(config.get("model", DEFAULT_MODEL), config.get("weights", DEFAULT_WEIGHTS))

    def to(self, device="auto", precision="auto", *args, **kwargs) -> "ClipTextEncoder":
        super().to(device, precision, *args, **kwargs)
        self.net.to(self.device)
        return self

    def _autocast(self):
        from ..device import autocast

        return autocast(self.precision, self.device)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        texts = self.check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        tokens = self.tokenizer(texts).to(self.device)
        with self._autocast():
            out = self.net.encode_text(tokens)
        return F.normalize(out.float(), dim=1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Unit-length CLIP image embeddings of uint8 (or [-1, 1] float) N×C×H×W images."""
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(self.device)
            x = x.float() / 255.0 if x.dtype == torch.uint8 else (x.float() + 1) / 2
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=x.shape[-1] > self.image_size).clamp(0, 1)
            with self._autocast():
                out.append(F.normalize(self.net.encode_image((x - mean) / std).float(), dim=1))
        return torch.cat(out) if out else torch.zeros(0, self.dim, device=self.device)

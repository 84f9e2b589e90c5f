"""CLIP score (Hessel et al. 2021, "CLIPScore"; the text-to-image form of torchmetrics and the
GALIP/LAFITE papers): ``100 x mean_i max(cos(E_img(x_i), E_txt(t_i)), 0)`` over images ``x_i`` each
drawn from its prompt ``t_i``, with CLIP ViT-B/32.

The CLIP network is ganforge's ``clip`` text encoder (:class:`ganforge.text.clip.ClipTextEncoder`:
open_clip, OpenAI's weights from the weights store entry ``clip-vit-b-32-openai``, sha256-checked,
or any open_clip folder as ``local-dir:PATH``), whose ``encode_images`` is the image tower. When the
weights cannot be had (offline without the file, a failed download, a broken folder),
:func:`load_clip` raises :class:`ClipUnavailable` with one line saying why and how to get them;
``ganforge eval`` then skips the metric and runs the others.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError, WeightsError

SPLITS = 10
WEIGHT = 100.0  # torchmetrics / text-to-image papers; Hessel et al.'s image-caption CLIPScore uses 2.5
PREPROCESSING = ("uint8/255 (greyscale repeated to RGB), bicubic resize to the model's input size (antialiased "
                 "when shrinking, no crop), CLIP mean/std; texts: open_clip tokenizer (CLIP BPE, 77 tokens)")


class ClipUnavailable(WeightsError):
    """The CLIP weights are not there (or not readable); the message says how to get them."""


def load_clip(model: str | None = None, device: str | torch.device | None = None):
    """ganforge's CLIP encoder (text and image towers) for ``model``: None or ``ViT-B-32`` (OpenAI
    weights through the weights store) or ``local-dir:PATH``; on ``device`` in fp32."""
    from ..text.clip import DEFAULT_MODEL, DEFAULT_WEIGHTS, ClipTextEncoder

    model = model or DEFAULT_MODEL
    try:
        encoder = ClipTextEncoder(model, DEFAULT_WEIGHTS)
    except GanforgeError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not model.startswith("local-dir:"):
            reason = reason.split("; put the file")[0]  # the text encoder's own advice names --text-encoder
            how = (f"get them with `ganforge weights fetch {DEFAULT_WEIGHTS}` (online), or put ViT-B-32.pt in "
                   f"GANFORGE_WEIGHTS_DIR, or pass --clip-model local-dir:PATH (an open_clip folder)")
        else:
            how = "pass --clip-model local-dir:PATH naming a folder with open_clip_config.json and its weights"
        raise ClipUnavailable(f"CLIP score skipped: {reason}; {how}") from None
    return encoder.eval().to(device or "cpu", "fp32")


def clip_protocol(encoder) -> dict:
    """What a CLIP score was measured with: the model, its weights (name and sha256, or the folder)."""
    from ..weights.store import WEIGHTS

    cfg = encoder.config()
    if cfg["model"].startswith("local-dir:"):
        weights = {"local_dir": cfg["model"][len("local-dir:"):]}
    else:
        entry = WEIGHTS.get(cfg["weights"])
        weights = {"name": entry.name, "file": entry.filename, "sha256": entry.sha256}
    return {"model": cfg["model"], "weights": weights, "embed_dim": cfg["dim"],
            "image_size": int(encoder.image_size), "preprocessing": PREPROCESSING}


@torch.no_grad()
def clip_score(encoder, images: torch.Tensor, prompts: list[str], *, batch_size: int = 64) -> dict:
    """CLIP score of ``images`` (uint8 or [-1, 1] float N×C×H×W) against their ``prompts`` (one
    each): {"clip_score", "std" (over 10 interleaved splits), "per_image", "protocol"}."""
    n = len(images)
    if n != len(prompts) or n == 0:
        raise GanforgeError(f"CLIP score: {n} images but {len(prompts)} prompts")
    texts = sorted(set(prompts))
    index = {t: k for k, t in enumerate(texts)}
    text_emb = torch.cat([encoder.encode(texts[i:i + batch_size]).float().cpu()
                          for i in range(0, len(texts), batch_size)])
    image_emb = encoder.encode_images(images, batch_size=batch_size).float().cpu()
    text_emb = torch.nn.functional.normalize(text_emb, dim=1)
    image_emb = torch.nn.functional.normalize(image_emb, dim=1)
    cos = (image_emb * text_emb[torch.tensor([index[p] for p in prompts])]).sum(dim=1)
    per_image = (WEIGHT * cos.clamp(min=0)).numpy().astype(np.float64)
    splits = min(SPLITS, n)
    return {"clip_score": float(per_image.mean()),
            "std": float(np.std([per_image[k::splits].mean() for k in range(splits)])),
            "per_image": per_image,
            "protocol": {**clip_protocol(encoder), "n": n, "distinct_prompts": len(texts),
                         "formula": f"{WEIGHT:g} * mean(max(cos(image_emb, text_emb), 0))",
                         "std": f"over {splits} interleaved splits of the images",
                         "reference": "Hessel et al. 2021, CLIPScore (w = 100 as in torchmetrics)"}}

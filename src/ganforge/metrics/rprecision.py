"""R-precision (AttnGAN, Xu et al. 2018): how often an image's own caption ranks first among R
candidates, by the cosine similarity of the text encoder's sentence embedding and its image
encoder's embedding.

For each image: its true caption plus R − 1 = 99 mismatched captions drawn at random (seeded) from
*other* images — whose caption text differs and, when ``groups`` are given (e.g. the
(digit, ink, background) of captioned digits), whose group differs too, so a mismatched caption
never says the same thing as the true one. A hit is the true caption scoring strictly above
every mismatched one. The score is the hit rate (AttnGAN reports mean ± std over 10 splits; here
``std`` is over 10 interleaved splits of the images as well). Used with the run's own encoder on
generated images (each drawn from its caption) and, by ``benchmarks/text_encoder.py``, on real
held-out images to measure the encoder itself.

The encoder is anything with ``encode(list[str]) -> N×D`` and ``encode_images(images) -> N×D``
(``ganforge.text``'s ``builtin`` and ``clip`` encoders); embeddings are L2-normalised here again.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError

SPLITS = 10


def _mismatched(keys: np.ndarray, cap_ids: np.ndarray, r: int, rng: np.random.Generator) -> np.ndarray:
    """N×(r−1) indices j with keys[j] != keys[i] and another caption text (rejection sampling, seeded)."""
    n = len(keys)
    out = np.empty((n, r - 1), dtype=np.int64)
    for i in range(n):
        chosen: list[int] = []
        while len(chosen) < r - 1:
            cand = rng.integers(n, size=2 * (r - 1))
            chosen.extend(int(j) for j in cand[(keys[cand] != keys[i]) & (cap_ids[cand] != cap_ids[i])])
        out[i] = chosen[:r - 1]
    return out


@torch.no_grad()
def r_precision(encoder, images: torch.Tensor, captions: list[str], *, r: int = 100, seed: int = 0,
                groups: list | None = None, batch_size: int = 256) -> dict:
    """R-precision of ``images`` (uint8 or [-1, 1] float N×C×H×W) against their ``captions`` (one
    string each); returns {"r_precision", "std", "images", "protocol"}."""
    n = len(images)
    if n != len(captions):
        raise GanforgeError(f"R-precision: {n} images but {len(captions)} captions")
    if groups is not None and len(groups) != n:
        raise GanforgeError(f"R-precision: {n} images but {len(groups)} groups")
    if r < 2:
        raise GanforgeError(f"R-precision: R must be at least 2, got {r}")
    texts = sorted(set(captions))
    text_id = {t: k for k, t in enumerate(texts)}
    cap_ids = np.array([text_id[c] for c in captions])
    if groups is not None:
        group_id = {g: k for k, g in enumerate(dict.fromkeys(map(_hashable, groups)))}
        keys = np.array([group_id[_hashable(g)] for g in groups])  # mismatched: another group and text
    else:
        keys = cap_ids
    if len(np.unique(keys)) < 2 or max(np.bincount(keys)) == n:
        raise GanforgeError("R-precision needs captions (or groups) of at least two different kinds")
    rng = np.random.default_rng(seed)
    wrong = _mismatched(keys, cap_ids, r, rng)
    text_emb = torch.cat([encoder.encode(texts[i:i + batch_size]).float().cpu()
                          for i in range(0, len(texts), batch_size)])
    text_emb = F.normalize(text_emb, dim=1)
    image_emb = F.normalize(torch.cat([encoder.encode_images(images[i:i + batch_size]).float().cpu()
                                       for i in range(0, n, batch_size)]), dim=1)
    cand = torch.from_numpy(np.concatenate([cap_ids[:, None], cap_ids[wrong]], axis=1))  # N×R, true first
    scores = torch.einsum("nd,nrd->nr", image_emb, text_emb[cand])
    hits = (scores[:, 0] > scores[:, 1:].max(dim=1).values).float().numpy()
    per_split = [hits[k::SPLITS].mean() for k in range(min(SPLITS, n))]
    return {"r_precision": float(hits.mean()), "std": float(np.std(per_split)), "images": n,
            "protocol": {"R": r, "mismatched": r - 1, "similarity": "cosine(encode_images, encode)",
                         "mismatched_from": "other images' captions with different text"
                                            + (" and a different group" if groups is not None else ""),
                         "hit": "true caption strictly above all mismatched", "splits": min(SPLITS, n),
                         "seed": seed, "encoder": getattr(encoder, "name", type(encoder).__name__),
                         "reference": "AttnGAN (Xu et al. 2018), R-precision"}}


def _hashable(g):
    return tuple(g) if isinstance(g, (list, tuple)) else (tuple(sorted(g.items())) if isinstance(g, dict) else g)

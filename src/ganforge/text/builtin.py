"""The ``builtin`` text encoder: trained on the dataset's own captions first, so text-to-image works
offline with nothing to download (DF-GAN / AttnGAN's recipe, made small).

- **Tokens**: open_clip's ``SimpleTokenizer`` (CLIP's byte-pair encoding, lower-cased, its
  vocabulary shipped inside the open_clip_torch wheel). The BPE ids that occur in the training
  captions become a compact vocabulary (stored in ``config()['vocab']``); 0 is padding, 1 is
  ``<unk>`` for any BPE id the training captions never had. A caption is cut to ``MAX_TOKENS``
  (32) BPE tokens.
- **Text encoder**: an embedding and one bidirectional LSTM layer; the sentence embedding is the
  two directions' last hidden states side by side (``dim`` = 256 by default), as in AttnGAN's
  ``RNN_ENCODER``.
- **Image encoder**: a small CNN (three stride-2 convolutions, mean and max pooling, a linear layer) to the same ``dim``; used
  only to train the text encoder and by R-precision (``encode_images``).
- **Training** (:func:`train_builtin_encoder`): DAMSM's sentence-level matching loss — a
  symmetric softmax over the batch of cosine similarities scaled by a learned temperature that
  starts at the paper's gamma3 = 10 — for two different captions of each image, so paraphrases
  of one image ("seven", "7", "the digit seven") are pulled to the same place. Seeded and
  deterministic; batches come from a private ``torch.Generator`` (no global RNG state changes).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, GanforgeError
from .encoder import TextEncoder, register_text_encoder

MAX_TOKENS = 32
PAD, UNK = 0, 1
TOKENIZER = "open_clip SimpleTokenizer (CLIP BPE, bpe_simple_vocab_16e6)"


@functools.lru_cache(maxsize=1)
def bpe_tokenizer():
    """open_clip's CLIP BPE tokenizer (its vocabulary file ships in the wheel: no download)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def bpe_ids(text: str) -> list[int]:
    """CLIP BPE ids of ``text`` (no start/end tokens), at most MAX_TOKENS."""
    return list(_bpe_ids(text))


@functools.lru_cache(maxsize=1 << 16)
def _bpe_ids(text: str) -> tuple[int, ...]:  # ftfy's clean-up costs ~2 ms a caption: once per text
    return tuple(bpe_tokenizer().encode(text)[:MAX_TOKENS])


class ImageEncoder(nn.Module):
    """uint8 or [-1, 1] float N×C×H×W -> N×dim (resized to ``image_size`` first)."""

    def __init__(self, channels: int, dim: int, image_size: int = 32, width: int = 32) -> None:
        super().__init__()
        self.channels, self.image_size = channels, image_size
        layers, c = [], channels
        for out in (width, width * 2, width * 4):
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c * 2, dim)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 3:
            images = images.unsqueeze(0)
        x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[1] != self.channels:  # grey <-> colour
            x = x.mean(1, keepdim=True).expand(-1, self.channels, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.body(self.prepare(images))
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))


@register_text_encoder("builtin")
class BuiltinTextEncoder(TextEncoder):
    """A bi-LSTM sentence encoder over a compact BPE vocabulary, with its DAMSM image encoder."""

    def __init__(self, vocab: list[int], *, dim: int = 256, embed_dim: int = 128, channels: int = 3,
                 image_size: int = 32, max_tokens: int = MAX_TOKENS) -> None:
        super().__init__()
        if dim % 2:
            raise GanforgeError(f"builtin text encoder: dim must be even (two LSTM directions), got {dim}")
        self.vocab = [int(v) for v in vocab]
        self.dim, self.embed_dim, self.max_tokens = dim, embed_dim, max_tokens
        self._index = {bpe: i + 2 for i, bpe in enumerate(self.vocab)}
        self.embed = nn.Embedding(len(self.vocab) + 2, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, dim // 2, batch_first=True, bidirectional=True)
        self.image_encoder = ImageEncoder(channels, dim, image_size)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # DAMSM gamma3 = 10, learned
        self.trained: dict[str, Any] = {}
        self.train_seconds: float | None = None

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "embed_dim": self.embed_dim, "max_tokens": self.max_tokens,
                "channels": self.image_encoder.channels, "image_size": self.image_encoder.image_size,
                "tokenizer": TOKENIZER, "vocab": list(self.vocab), "normalized": True, "trained": dict(self.trained)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "BuiltinTextEncoder":
        try:
            enc = cls(config["vocab"], dim=int(config["dim"]), embed_dim=int(config["embed_dim"]),
                      channels=int(config["channels"]), image_size=int(config["image_size"]),
                      max_tokens=int(config.get("max_tokens", MAX_TOKENS)))
        except (KeyError, TypeError, ValueError) as exc:
            raise GanforgeError(f"builtin text encoder config is incomplete ({exc})") from None
        enc.trained = dict(config.get("trained") or {})
        return enc

    def token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×L compact ids, padded with 0; N lengths >= 1)."""
        rows = [[self._index.get(b, UNK) for b in bpe_ids(t)[:self.max_tokens]] or [UNK] for t in texts]
        return _pad(rows)

    def text_features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sentence features (not normalised, with gradient) of padded ids."""
        x = self.embed(ids.to(self.embed.weight.device))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return torch.cat([h[0], h[1]], dim=1)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        texts = self.check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim, device=self.embed.weight.device)
        ids, lengths = self.token_ids(texts)
        return F.normalize(self.text_features(ids, lengths).float(), dim=1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Unit-length image embeddings (N×dim) of uint8 (or [-1, 1] float) N×C×H×W images."""
        device = self.embed.weight.device
        out = [F.normalize(self.image_encoder(images[i:i + batch_size].to(device)).float(), dim=1)
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.dim, device=device)

    def unknown_fraction(self, texts: list[str]) -> float:
        """Share of the BPE tokens of ``texts`` that the training captions never had (<unk>)."""
        ids = [b for t in texts for b in bpe_ids(t)]
        return sum(b not in self._index for b in ids) / max(len(ids), 1)


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.zeros(len(rows), int(lengths.max()) if rows else 1, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return ids, lengths


def matching_loss(text: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """DAMSM's sentence loss: symmetric cross-entropy over the batch's cosine similarities × gamma."""
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * F.normalize(text, dim=1) @ F.normalize(image, dim=1).T
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def build_vocab(captions: list[list[str]], max_size: int = 20000) -> list[int]:
    """The BPE ids of the captions, most frequent first (ties by id), at most ``max_size``."""
    from collections import Counter

    counts = Counter(b for caps in captions for c in caps for b in bpe_ids(c))
    return [b for b, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size]]


def train_builtin_encoder(images: torch.Tensor, captions: list[list[str]], *, steps: int = 600,
                          batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu",
                          progress: bool = True, lr: float = 2e-3, dim: int = 256) -> BuiltinTextEncoder:
    """Train a ``BuiltinTextEncoder`` on uint8 ``images`` (N×C×H×W) and their ``captions`` (one
    list per image; images without any are left out). Returns it frozen (eval mode, on ``device``),
    with ``trained`` = {steps, batch_size, seed, images, captions, loss} (also in ``config()``) and
    ``train_seconds``."""
    from tqdm.auto import tqdm

    from ..device import resolve_device

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError("train_builtin_encoder: images must be a uint8 tensor N×C×H×W")
    if len(images) != len(captions):
        raise DataError(f"train_builtin_encoder: {len(images)} images but {len(captions)} caption lists")
    keep = [i for i, caps in enumerate(captions) if caps]
    if len(keep) < 2:
        raise DataError("train_builtin_encoder: needs at least 2 captioned images")
    if steps < 1 or batch_size < 2:
        raise DataError(f"train_builtin_encoder: steps must be >= 1 and batch_size >= 2 (got {steps}, {batch_size})")
    images = images[keep]
    captions = [captions[i] for i in keep]
    device = resolve_device(device)
    t0 = time.perf_counter()
    vocab = build_vocab(captions)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        enc = BuiltinTextEncoder(vocab, dim=dim, channels=images.shape[1], image_size=min(images.shape[-1], 64))
    enc.to(device, "fp32")
    flat = [c for caps in captions for c in caps]
    ids, lengths = enc.token_ids(flat)  # every caption tokenised once
    start = torch.tensor([0] + [len(c) for c in captions]).cumsum(0)[:-1]
    count = torch.tensor([len(c) for c in captions])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(enc.parameters(), lr=lr, betas=(0.5, 0.999))
    batch_size = min(batch_size, len(images))
    enc.train()
    loss_value = float("nan")
    perm, cursor = torch.randperm(len(images), generator=gen), 0
    for _ in tqdm(range(steps), desc="text encoder", unit="step", disable=not progress):
        if cursor + batch_size > len(perm):
            perm, cursor = torch.randperm(len(images), generator=gen), 0
        pick = perm[cursor:cursor + batch_size]
        cursor += batch_size
        # two different captions of each image (the same one when it has only one)
        a = (torch.rand(len(pick), generator=gen) * count[pick]).long()
        b = (a + 1 + (torch.rand(len(pick), generator=gen) * (count[pick] - 1)).long()) % count[pick]
        rows_a, rows_b = start[pick] + a, start[pick] + b
        rows = torch.cat([rows_a, rows_b])
        length = lengths[rows]
        feats = enc.text_features(ids[rows, :int(length.max())].to(device), length)
        vis = enc.image_encoder(images[pick].to(device))
        ta, tb = feats.split(len(pick))
        loss = (matching_loss(ta, vis, enc.logit_scale) + matching_loss(tb, vis, enc.logit_scale)
                + matching_loss(ta, tb, enc.logit_scale)) / 3
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    enc.eval().requires_grad_(False)
    enc.trained = {"steps": steps, "batch_size": batch_size, "seed": seed, "images": len(images),
                   "captions": len(flat), "loss": round(loss_value, 6)}  # no timing: equal runs, equal configs
    enc.train_seconds = round(time.perf_counter() - t0, 2)
    return enc

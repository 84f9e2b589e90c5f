"""Training a fingerprint encoder/decoder pair on a dataset's images (Yu et al. 2021, §3.1): random
codes, the encoder's output quantised to 8 bits and lightly noised before the decoder reads it, so
that the decoder also reads the code back from a generator's imperfect copies of such images."""

from __future__ import annotations

import torch
from torch import nn

from .nets import DEFAULT_STRENGTH
from .pair import Fingerprint, build, to_8bit

RESIDUAL_WEIGHT = 2.0  # the L2 penalty on the residual (ramped in over the second half: the code is learnt first,
# then the encoder uses no more of its bound, FingerprintEncoder.strength, than it needs)
MAX_NOISE = 0.04  # Gaussian noise (in [-1, 1] units) the decoder learns to read through
DEFAULT_STEPS = 1500


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """8-bit rounding with a straight-through gradient."""
    return x + (to_8bit(x) - x).detach()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (:func:`ganforge.metrics.imagesim.psnr` on them in [0, 1])."""
    from ..metrics.imagesim import psnr as psnr01

    return psnr01((a + 1) / 2, (b + 1) / 2)


def train_fingerprint(images: torch.Tensor, code: list[int], *, steps: int = DEFAULT_STEPS, batch_size: int = 64,
                      strength: float = DEFAULT_STRENGTH, seed: int = 0, lr: float = 1e-3,
                      device: str | torch.device = "cpu", progress: bool = False) -> tuple[Fingerprint, dict]:
    """Train a pair for ``code`` on ``images`` (uint8, N x C x H x W, the training data at the run's
    resolution), its residual at most ``strength`` per pixel; returns it (in eval mode) and its
    check on held-out images: the bit accuracy of fingerprinted images with their own random codes
    and with ``code``, the PSNR of the fingerprint, and the bit accuracy of unmarked images."""
    device = torch.device(device)
    n, channels, resolution = images.shape[0], images.shape[1], images.shape[-1]
    bits = len(code)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        fp = build(code, channels, resolution, strength=strength)
    enc, dec = fp.encoder.to(device).train(), fp.decoder.to(device).train()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    held = min(512, max(1, n // 10))
    train_n = max(1, n - held)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="fingerprint encoder/decoder", unit="step", leave=False)
    for step in range(steps):
        idx = torch.randint(0, train_n, (batch_size,), generator=g)
        x = images[idx].to(device).float().div(127.5).sub(1)
        w = torch.randint(0, 2, (batch_size, bits), generator=g).to(device)
        marked = enc(x, w)
        noise = torch.randn(x.shape, generator=g).to(device) * (torch.rand(batch_size, 1, 1, 1, generator=g).to(device) * MAX_NOISE)
        logits = dec(_quantised(marked) + noise)
        ramp = max(0.0, 2.0 * step / steps - 1.0)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, w.float()) \
            + ramp * RESIDUAL_WEIGHT * (marked - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    enc.eval().requires_grad_(False)
    dec.eval().requires_grad_(False)
    x = images[train_n:].float().div(127.5).sub(1) if n > 1 else images.float().div(127.5).sub(1)
    w = torch.randint(0, 2, (len(x), bits), generator=g)
    with torch.no_grad():
        marked = _quantised(enc(x.to(device), w.to(device)))
        acc = float(((dec(marked) > 0).long().cpu() == w).float().mean())
        own = fp.embed(x)
    check = {"bits": bits, "steps": steps, "strength": strength, "heldout_images": len(x), "heldout_bit_accuracy": round(acc, 4),
             "own_code_bit_accuracy": round(fp.bit_accuracy(own), 4), "psnr_db": round(psnr(own, x), 2),
             "unmarked_bit_accuracy": round(fp.bit_accuracy(x), 4)}
    return fp, check

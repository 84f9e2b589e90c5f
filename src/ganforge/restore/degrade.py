"""Degradations that turn high-resolution crops into (LR, HR) training pairs on the fly, and
:class:`DegradedBatches`, the batch source that serves them to the training loop.

Every random choice (crop, flip, blur width, noise, JPEG quality, resize factors) is drawn from
the generator passed in — the run's checkpointed generator — and nothing else, so batch ``k`` is a
function of (seed, epoch permutation, ``k``, generator state): resume is exact (see
``train/batches.py``). Images are float RGB in **[0, 1]** throughout, the range of
:mod:`ganforge.nets.rrdb`'s networks; the LR image is finally quantised to 8 bits, as the images
an upscaler meets at inference are.

Degradations (``DEGRADATIONS``):

- ``bicubic``: antialiased bicubic downscale (the classic SR benchmark setting; default);
- ``blur``: Gaussian blur (sigma uniform in [0.2, 3]) then bicubic downscale;
- ``noise``: bicubic downscale then Gaussian noise (sigma uniform in [1, 25] / 255);
- ``jpeg``: bicubic downscale then JPEG (quality uniform in [30, 95]);
- ``classic``: blur -> bicubic downscale -> noise -> JPEG, one round;
- ``realistic``: Real-ESRGAN's second-order model (Wang et al. 2021): two rounds of
  blur -> random resize (area, bilinear or bicubic) -> noise (Gaussian or Poisson, half each) ->
  JPEG, the second round ending at the target size with a 2-D sinc filter (p 0.8) before its JPEG,
  which makes the ringing and overshoot artefacts of sharpened, resized images. Real-ESRGAN's
  generalised/plateau blur kernels, grey noise and its random sinc/JPEG order are left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import DataError
from ..train.batches import EpochShards, apply_flip, check_images, crop_at, crop_offsets, flip_mask

DEGRADATIONS = ("bicubic", "blur", "noise", "jpeg", "classic", "realistic")
_RESIZE_MODES = ("area", "bilinear", "bicubic")


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws uniform in [low, high) from ``generator``, as a CPU float64 tensor."""
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    return low + (high - low) * u


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize N×C×H×W to ``size`` (antialiased when shrinking with bilinear/bicubic), clamped to [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "area":
        out = F.interpolate(x, size=size, mode="area")
    else:
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=shrink)
    return out.clamp(0, 1)


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale by an integer ``scale`` (H and W must divide by it)."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise DataError(f"image size {h}×{w} is not divisible by the scale {scale}")
    return resize(x, (h // scale, w // scale), "bicubic")


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Blur image i with an isotropic Gaussian of sigma ``sigmas[i]`` (reflect padding); the kernel
    radius is ceil(3 sigma) of the largest sigma."""
    n, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigmas.max()))))
    radius = min(radius, (min(h, w) - 1))  # reflect padding needs radius < size
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k1 = torch.exp(-0.5 * (t[None] / sigmas.double()[:, None]) ** 2)
    k1 = (k1 / k1.sum(1, keepdim=True)).to(x.dtype).to(x.device)  # N×K
    size = 2 * radius + 1
    flat = x.reshape(1, n * c, h, w)
    kx = k1.repeat_interleave(c, 0).view(n * c, 1, 1, size)
    ky = k1.repeat_interleave(c, 0).view(n * c, 1, size, 1)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kx, groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), ky, groups=n * c)
    return flat.view(n, c, h, w)


def gaussian_noise(x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Add colour Gaussian noise of standard deviation ``sigmas[i]`` (on the [0, 1] scale) to image i."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32).to(x.device)
    return (x + noise.to(x.dtype) * sigmas.to(x.dtype).to(x.device).view(-1, 1, 1, 1)).clamp(0, 1)


def poisson_noise(x: torch.Tensor, scales: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Signal-dependent (shot) noise: Poisson counts of the 8-bit intensity, the deviation from the
    image scaled by ``scales[i]`` (Real-ESRGAN's 0.05-3), so bright areas get more noise than dark."""
    base = x.detach().clamp(0, 1).float().to(generator.device)
    noise = torch.poisson(base * 255, generator=generator) / 255 - base
    return (x + noise.to(x.device, x.dtype) * scales.to(x.device, x.dtype).view(-1, 1, 1, 1)).clamp(0, 1)


SINC_SIZE = 21  # the largest sinc kernel (Real-ESRGAN's)


def sinc_kernel(cutoff: float, size: int) -> torch.Tensor:
    """A circular low-pass kernel (the 2-D "sinc", an Airy pattern): ``w J1(w r) / (2 pi r)`` for the
    cutoff ``w`` in radians per pixel (pi: no filtering), ``size`` odd, normalised to sum 1. Its
    side lobes are what make ringing around edges."""
    r = size // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    rr = torch.sqrt(t[:, None] ** 2 + t[None] ** 2)
    k = cutoff * torch.special.bessel_j1(cutoff * rr) / (2 * math.pi * rr.clamp_min(1e-12))
    k = torch.where(rr == 0, torch.full_like(rr, cutoff ** 2 / (4 * math.pi)), k)
    return (k / k.sum()).float()


def sinc_filter(x: torch.Tensor, cutoffs: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Filter image i with ``sinc_kernel(cutoffs[i], sizes[i])`` (reflect padding; kernels wider
    than the image are cut to it and renormalised)."""
    n, c, h, w = x.shape
    radius = min(SINC_SIZE // 2, min(h, w) - 1)
    kernels = []
    for cut, size in zip(cutoffs.tolist(), sizes.tolist()):
        k = F.pad(sinc_kernel(cut, int(size)), [(SINC_SIZE - int(size)) // 2] * 4)
        k = k[SINC_SIZE // 2 - radius: SINC_SIZE // 2 + radius + 1, SINC_SIZE // 2 - radius: SINC_SIZE // 2 + radius + 1]
        kernels.append(k / k.sum())
    weight = torch.stack(kernels).to(x.device, x.dtype).repeat_interleave(c, 0)[:, None]
    flat = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    return F.conv2d(flat, weight, groups=n * c).view(n, c, h, w)


def jpeg(x: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
    """JPEG-compress image i at quality ``qualities[i]`` (rounded, 1..95) through 8 bits
    (Pillow's libjpeg on the CPU, 4:2:0 chroma subsampling: deterministic)."""
    import io

    import numpy as np
    from PIL import Image

    u8 = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    out = []
    for img, q in zip(u8, qualities.tolist()):
        q = int(min(95, max(1, round(q))))
        arr = img.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="JPEG", quality=q)
        buf.seek(0)
        back = np.array(Image.open(buf))
        out.append(torch.from_numpy(back.reshape(arr.shape)).permute(2, 0, 1))
    return torch.stack(out).to(x.device, x.dtype).div_(255)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels (what a saved LR image holds)."""
    return x.clamp(0, 1).mul(255).round().div(255)


def degrade(hr: torch.Tensor, scale: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    """LR images (N×C×H/scale×W/scale, [0, 1], 8-bit levels) from HR ones (N×C×H×W, [0, 1]) with
    the degradation ``kind``; every random draw comes from ``generator``, in a fixed order."""
    if kind not in DEGRADATIONS:
        raise DataError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    n = hr.shape[0]
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    x = hr.float()
    if kind == "bicubic":
        x = bicubic_down(x, scale)
    elif kind == "blur":
        x = bicubic_down(gaussian_blur(x, _uniform(n, 0.2, 3.0, generator)), scale)
    elif kind == "noise":
        x = gaussian_noise(bicubic_down(x, scale), _uniform(n, 1 / 255, 25 / 255, generator), generator)
    elif kind == "jpeg":
        x = jpeg(bicubic_down(x, scale), _uniform(n, 30, 95, generator))
    elif kind == "classic":
        x = bicubic_down(gaussian_blur(x, _uniform(n, 0.2, 3.0, generator)), scale)
        x = gaussian_noise(x, _uniform(n, 1 / 255, 25 / 255, generator), generator)
        x = jpeg(x, _uniform(n, 30, 95, generator))
    else:  # realistic: two rounds (Real-ESRGAN's second-order degradation, simplified)
        x = _round(x, generator, blur=(0.2, 3.0), blur_p=1.0, factor=(0.15, 1.5), noise=(1, 30),
                   poisson=(0.05, 3.0), final=None, base=(hr.shape[-2], hr.shape[-1]))
        x = _round(x, generator, blur=(0.2, 1.5), blur_p=0.8, factor=(0.3, 1.2), noise=(1, 25),
                   poisson=(0.05, 2.5), final=(h, w), base=(hr.shape[-2] // scale, hr.shape[-1] // scale))
    return quantise(x)


def _round(x: torch.Tensor, generator: torch.Generator, *, blur: tuple[float, float], blur_p: float,
           factor: tuple[float, float], noise: tuple[float, float], poisson: tuple[float, float],
           final: tuple[int, int] | None, base: tuple[int, int]) -> torch.Tensor:
    """One round of blur -> resize -> noise (Gaussian or Poisson, half each) -> JPEG. The resize
    factor (one per batch: images of a batch keep one size) is relative to ``base``; ``final``
    forces the last resize to that size and adds the sinc filter (p 0.8) before the JPEG."""
    n = x.shape[0]
    draws = _uniform(n, 0, 1, generator)  # which images are blurred
    sigmas = _uniform(n, *blur, generator)
    blurred = gaussian_blur(x, sigmas)
    keep = (draws < blur_p).to(x.device).view(-1, 1, 1, 1)
    x = torch.where(keep, blurred, x)
    f = float(_uniform(1, *factor, generator)[0])
    mode = _RESIZE_MODES[int(_uniform(1, 0, len(_RESIZE_MODES), generator)[0])]
    if final is None:
        size = (max(4, round(base[0] * f)), max(4, round(base[1] * f)))
        x = resize(x, size, mode)
    else:
        x = resize(x, final, mode)
    gaussian = (_uniform(n, 0, 1, generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    noisy_g = gaussian_noise(x, _uniform(n, noise[0] / 255, noise[1] / 255, generator), generator)
    noisy_p = poisson_noise(x, _uniform(n, *poisson, generator), generator)
    x = torch.where(gaussian, noisy_g, noisy_p)
    if final is not None:
        ring = (_uniform(n, 0, 1, generator) < 0.8).to(x.device).view(-1, 1, 1, 1)
        cutoffs = _uniform(n, math.pi / 3, math.pi, generator)
        sizes = 7 + 2 * _uniform(n, 0, 8, generator).floor().clamp(max=7)  # odd, 7..21
        x = torch.where(ring, sinc_filter(x, cutoffs, sizes), x)
    return jpeg(x, _uniform(n, 30, 95, generator))


class DegradedBatches:
    """(LR, HR) training pairs from uint8 N×C×H×W images: a random ``crop``×``crop`` HR window per
    image (and a horizontal flip), converted to float [0, 1], and its LR version made by
    :func:`degrade`. Returns ``{"lr": N×C×crop/scale×crop/scale, "hr": N×C×crop×crop}``, both
    float in [0, 1] on ``device``. Epoch order from :class:`EpochShards` (seed, epoch); every other
    draw from the run's generator."""

    count_key = "hr"

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, *, crop: int, scale: int,
                 degradation: str = "bicubic", hflip: bool = True) -> None:
        if degradation not in DEGRADATIONS:
            raise DataError(f"unknown degradation {degradation!r}; choose from {', '.join(DEGRADATIONS)}")
        if crop % scale:
            raise DataError(f"the HR crop ({crop}) must be a multiple of the scale ({scale})")
        check_images("images", images, crop)
        self.images, self.batch_size, self.crop, self.scale = images, batch_size, crop, scale
        self.degradation, self.hflip = degradation, hflip
        self.shards = EpochShards(len(images), batch_size, seed)

    def get(self, index, rank, world, generator, device) -> dict[str, torch.Tensor]:
        idx = self.shards.indices(index, rank, world)
        x = self.images[idx]
        x = crop_at(x, crop_offsets(len(idx), x.shape[-2], x.shape[-1], self.crop, generator), self.crop)
        hr = x.to(device, non_blocking=True).float().div_(255)
        if self.hflip:
            hr = apply_flip(hr, flip_mask(len(idx), generator, device))
        return {"lr": degrade(hr, self.scale, self.degradation, generator), "hr": hr}

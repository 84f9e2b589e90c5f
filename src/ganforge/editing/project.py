"""GAN inversion: find the latent whose image is a given picture, by optimisation in W or W+.

The recipe is the official StyleGAN2-ADA projector's (Karras et al. 2020, ``projector.py``):
start at the mean w (from 10 000 mapped z), Adam (betas 0.9, 0.999) with a learning rate ramped
up over the first 5 % of the steps and down (cosine) over the last 25 %, Gaussian noise added to w
that decays to zero over the first 75 %, the per-layer noise maps optimised too with the
multi-scale autocorrelation penalty (weight 1e5) and re-normalised after each step. The distance is
:class:`~ganforge.editing.loss.Distance` (LPIPS-style on VGG19 when one is on this machine, else pixel
MSE + (1 - SSIM); the result names it) plus ``pixel_weight`` × MSE. Differences from the official
code, on purpose: the noise maps start from the network's own stored maps rather than fresh noise
(so an image the network drew is reachable exactly), W+ is offered beside W, and the optimised noise
maps are kept with the latent so that the reconstruction is reproducible.

Optional pivotal tuning (PTI, Roich et al. 2021): then fine-tune a copy of the synthesis network for
``pti_steps`` steps so that the pivot latent draws the image (distance + MSE, Adam lr 3e-4); the
result holds that tuned generator and the PSNR/distance before and after.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from ..generator import Generator
from .common import EditError, load_model, noise_buffers, prepare_image, save_latent, synthesize
from .loss import Distance, psnr

W_SAMPLES = 10_000
SPACES = ("w", "w+")


@dataclass
class Projection:
    """What :func:`project` found: ``ws`` (1×num_ws×w_dim), the optimised noise maps, the
    reconstruction and target (1×C×R×R in [0, 1]) and their agreement; ``tuned``: the PTI generator."""

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    image: torch.Tensor
    target: torch.Tensor
    space: str
    steps: int
    loss: str
    psnr: float
    distance: float
    resize: str
    seconds: float
    frames: list[torch.Tensor] = field(default_factory=list, repr=False)
    pti: dict | None = None
    tuned: Generator | None = field(default=None, repr=False)
    tuned_image: torch.Tensor | None = field(default=None, repr=False)

    def summary(self) -> dict:
        out = {"space": self.space, "steps": self.steps, "loss": self.loss, "psnr_db": round(self.psnr, 3),
               "distance": round(self.distance, 6), "input": self.resize, "seconds": round(self.seconds, 2),
               "seconds_per_step": round(self.seconds / max(self.steps, 1), 5)}
        if self.pti:
            out["pti"] = self.pti
        return out

    def save(self, out_dir: str | os.PathLike, *, fps: int = 24, provenance=None) -> dict[str, str]:
        """Write latent.npz, latent.safetensors, target.png, reconstruction.png, progress.mp4 (and
        reconstruction_pti.png, pti_generator.safetensors) into ``out_dir``; returns their paths.
        ``provenance`` (a :class:`ganforge.provenance.Provenance`): carried by the generated images
        and video (the reconstructions, progress.mp4), not by target.png, the user's own photo."""
        from ..imageio import save_image
        from ..sample import write_video

        out = Path(out_dir)
        info = {k: v for k, v in self.summary().items() if k != "pti"}
        files = {"latent_npz": save_latent(out / "latent.npz", self.ws, noise=self.noise, info=info),
                 "latent": save_latent(out / "latent.safetensors", self.ws, noise=self.noise, info=info),
                 "target": save_image(self.target[0], out / "target.png"),
                 "reconstruction": save_image(self.image[0].clamp(0, 1), out / "reconstruction.png",
                                              provenance=provenance)}
        if self.frames:
            res = self.image.shape[-1]
            files["video"] = write_video(torch.stack(self.frames), out / "progress.mp4", fps=fps,
                                         scale=max(1, 256 // res), provenance=provenance)
        if self.tuned_image is not None:
            files["reconstruction_pti"] = save_image(self.tuned_image[0].clamp(0, 1), out / "reconstruction_pti.png",
                                                      provenance=provenance)
        if self.tuned is not None:
            from ..nets import ARCHITECTURES

            if self.tuned.arch in ARCHITECTURES:
                from ..export.generator_file import export_generator

                export_generator(self.tuned, out / "pti_generator.safetensors")
                files["pti_generator"] = out / "pti_generator.safetensors"
        return {k: str(v) for k, v in files.items()}


@torch.no_grad()
def w_stats(gen: Generator, n: int = W_SAMPLES, seed: int = 123, label: int | None = None) -> tuple[torch.Tensor, float]:
    """(mean w (w_dim), the RMS distance of w from it) over ``n`` mapped z, as the official projector."""
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    y = None
    if gen.num_classes:
        y = (torch.full((n,), label, dtype=torch.long) if label is not None
             else torch.randint(0, gen.num_classes, (n,), generator=torch.Generator().manual_seed(seed + 1)))
    w = torch.cat([gen.mapping(z[i:i + 2048], None if y is None else y[i:i + 2048])[:, 0].float()
                   for i in range(0, n, 2048)])
    avg = w.mean(0)
    return avg, float(((w - avg).square().sum() / n).sqrt())


def _noise_penalty(noises: list[torch.Tensor]) -> torch.Tensor:
    reg = 0.0
    for noise in noises:
        noise = noise.reshape(1, 1, *noise.shape[-2:])
        while True:
            reg = reg + (noise * noise.roll(1, dims=3)).mean() ** 2 + (noise * noise.roll(1, dims=2)).mean() ** 2
            if noise.shape[-1] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return reg


def _lr(t: float, base: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / rampup)


def project(model, image, *, steps: int = 1000, space: str = "w+", pti_steps: int = 0, seed: int = 0,
            loss: str = "auto", pixel_weight: float = 1.0, label: int | None = None, lr: float = 0.1,
            noise_weight: float = 1e5, optimize_noise: bool = True, frames: int = 60, pti_lr: float = 3e-4,
            device: str = "auto", precision: str = "auto", align: str | None = None,
            callback: Callable[[int, float], None] | None = None) -> Projection:
    """Project ``image`` (a path, PIL image or tensor in [0, 1]; resized and centre-cropped to the
    model's size) into the W (``space='w'``) or W+ space of ``model`` (a W-space generator, its run,
    export, ``.pkl`` or published name). ``frames``: progress frames kept for the video (0: none).
    Optimisation runs in fp32 (``precision`` auto or fp32). ``callback(step, loss)`` after each step."""
    if space not in SPACES:
        raise EditError(f"unknown space {space!r}; use w or w+")
    if steps < 1 or pti_steps < 0:
        raise EditError("--steps must be at least 1 and --pti-steps at least 0")
    if not noise_weight >= 0:
        raise EditError(f"--noise-reg must be >= 0, got {noise_weight}")
    if precision not in ("auto", "fp32"):
        raise EditError(f"projection optimises in fp32; --precision {precision} is not available (auto means fp32)")
    gen = load_model(model, device, "fp32")
    if gen.num_classes and label is not None and not 0 <= label < gen.num_classes:
        raise EditError(f"class must be in 0..{gen.num_classes - 1}")
    if align not in (None, "none", "faces"):
        raise EditError(f"unknown --align {align!r}; use faces (or leave it out)")
    t0 = time.perf_counter()
    if align == "faces":  # the FFHQ crop of the photo's largest face (ganforge.editing.faces)
        from ..imageio import open_image
        from .faces import align_face

        what = str(image) if not isinstance(image, (Image.Image, torch.Tensor)) else "the image"
        if isinstance(image, torch.Tensor):
            from ..imageio import tensor_to_pil

            photo = tensor_to_pil(image[0] if image.dim() == 4 else image)
        else:
            photo = image if isinstance(image, Image.Image) else open_image(image, "RGB")
        image = align_face(photo, gen.resolution, what)
    target, note = prepare_image(image, gen)
    if align == "faces":
        note = "face aligned as FFHQ (YuNet landmarks); " + note
    dev = gen.device
    target = target.to(dev)
    dist = Distance(loss).to(dev)
    target_feats = dist.target(target)
    rng = torch.Generator(device="cpu").manual_seed(seed)
    avg, std = w_stats(gen, label=label)
    n_ws = 1 if space == "w" else int(gen.G_ema.num_ws)
    w_opt = avg.to(dev).reshape(1, 1, -1).repeat(1, n_ws, 1).requires_grad_(True)
    net = copy.deepcopy(gen.G_ema).eval().requires_grad_(False)
    bufs = noise_buffers(net)
    noises = list(bufs.values()) if optimize_noise else []
    for buf in noises:
        buf.requires_grad_(True)
    opt = torch.optim.Adam([w_opt] + noises, betas=(0.9, 0.999), lr=lr)
    keep_every = max(1, steps // frames) if frames else 0
    kept: list[torch.Tensor] = []
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = _lr(t, lr)
        w_noise_scale = std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        w_noise = torch.randn(w_opt.shape, generator=rng).to(dev) * w_noise_scale
        ws = (w_opt + w_noise).expand(-1, int(gen.G_ema.num_ws), -1)
        img = synthesize(net, ws)
        d = dist(img, target_feats).sum()
        value = d + pixel_weight * F.mse_loss(img, target) + (noise_weight * _noise_penalty(noises) if noises else 0)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        with torch.no_grad():
            for buf in noises:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if keep_every and (step % keep_every == 0 or step == steps - 1):
            kept.append(torch.cat([target, img.detach().clamp(0, 1)], dim=-1)[0].cpu())
        if callback is not None:
            callback(step, float(value.detach()))
    for buf in noises:
        buf.requires_grad_(False)
    ws = w_opt.detach().expand(-1, int(gen.G_ema.num_ws), -1).contiguous()
    with torch.no_grad():
        recon = synthesize(net, ws)
        before = (psnr(recon, target), float(dist(recon.clamp(0, 1), target_feats).mean()))
    result = Projection(ws=ws.cpu(), noise={k: v.detach().cpu() for k, v in bufs.items()}, image=recon.cpu(),
                        target=target.cpu(), space=space, steps=steps, loss=dist.name, psnr=before[0],
                        distance=before[1], resize=note, seconds=0.0, frames=kept)
    if pti_steps:
        _pivotal_tuning(result, gen, net, ws, target, target_feats, dist, pti_steps, pti_lr, kept, keep_every)
    result.seconds = time.perf_counter() - t0
    return result


def _pivotal_tuning(result: Projection, gen: Generator, net: torch.nn.Module, ws: torch.Tensor,
                    target: torch.Tensor, target_feats, dist: Distance, steps: int, lr: float,
                    kept: list[torch.Tensor], keep_every: int) -> None:
    """Fine-tune ``net``'s synthesis network (in place: it is the projection's own copy) around
    the pivot ``ws``; records the tuned generator, its reconstruction and before/after figures."""
    params = [p for p in net.synthesis.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        img = synthesize(net, ws)
        value = dist(img, target_feats).sum() + F.mse_loss(img, target)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if keep_every and step % keep_every == 0:
            kept.append(torch.cat([target, img.detach().clamp(0, 1)], dim=-1)[0].cpu())
    net.requires_grad_(False)
    with torch.no_grad():
        tuned_img = synthesize(net, ws)
        after = (psnr(tuned_img, target), float(dist(tuned_img.clamp(0, 1), target_feats).mean()))
    result.tuned_image = tuned_img.cpu()
    result.tuned = Generator(net, net, gen.spec, gen.class_names, gen.step, gen.run_dir, arch=gen.arch)
    result.pti = {"steps": steps, "psnr_db_before": round(result.psnr, 3), "psnr_db_after": round(after[0], 3),
                  "distance_before": round(result.distance, 6), "distance_after": round(after[1], 6)}

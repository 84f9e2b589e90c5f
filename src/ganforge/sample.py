"""Load a trained generator (from a run directory or an exported file) and draw, save and
interpolate samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from .config import GanConfig
from .errors import GanforgeError
from .imageio import save_image, tensor_to_pil
from .provenance import Provenance
from .nets import GanNetSpec, build_gan
from .generator import TRUNCATION_ROUNDS, Generator  # noqa: F401 (re-exported)
from .train import checkpoint
from .train.rundir import register_run_task


def load_generator(run_dir: str | Path, *, checkpoint_name: str = "latest") -> Generator:
    """Load the generator of a GAN run directory (``checkpoint_name``: 'latest', 'best' or
    'step-N'), or of a file written by ``ganforge export`` (a ``.safetensors`` file, which holds one
    checkpoint: see docs/export.md), or a published StyleGAN2-ADA network: an official ``.pkl``
    or its registered name (``stylegan2-ffhq``, ...; ``ganforge.published``), or a rosinality
    stylegan2-pytorch ``.pt``. Runs of other tasks load through :func:`ganforge.runs.load_run`."""
    from .train.rundir import load_checkpoint, require_task

    from .published import is_published, load_published

    if is_published(run_dir):  # NVIDIA's StyleGAN2-ADA .pkl (or name), a rosinality .pt
        if checkpoint_name != "latest":
            raise GanforgeError(f"{run_dir} is a published network (one set of weights); "
                                "--checkpoint applies to run directories")
        return load_published(run_dir)
    run_dir = Path(run_dir)
    if run_dir.is_file() or (run_dir.suffix == ".safetensors" and not run_dir.is_dir()):
        from .export.generator_file import load_exported

        if checkpoint_name != "latest":
            raise GanforgeError(f"{run_dir} is an exported generator (one set of weights); "
                                "--checkpoint applies to run directories")
        return load_exported(run_dir)
    meta = require_task(run_dir, "gan")  # another task's run: a one-line error naming its command
    cfg = GanConfig.load(run_dir / "config.json")
    spec = GanNetSpec(**meta["spec"])
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    if cfg.arch == "stylegan2-official":  # fine-tuned from a published network (train --init)
        from .published.load import official_generator

        G, G_ema = official_generator(meta["official_kwargs"]), official_generator(meta["official_kwargs"])
    else:
        G, _ = build_gan(cfg.arch, spec)
        G_ema, _ = build_gan(cfg.arch, spec)
    checkpoint.restore_modules({"G": G, "G_ema": G_ema}, tensors, path)
    encoder = None
    if cfg.text:  # its frozen text encoder, stored in the run
        from .train.textfiles import load_run_encoder

        encoder = load_run_encoder(run_dir)
    return Generator(G_ema, G, spec, meta.get("class_names", []), int(state["step"]), run_dir, arch=cfg.arch,
                     text_encoder=encoder)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, *,
              provenance: Provenance | None = None) -> Path:
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    return save_image(make_grid(images, nrow=nrow, padding=2, pad_value=1.0), path, provenance=provenance)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: stays on the Gaussian shell where G was trained."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def interpolation_frames(gen: Generator, seeds: list[int], frames_per_seed: int = 24, label=None,
                         ema: bool = True, truncation: float = 1.0) -> torch.Tensor:
    """A closed latent walk through ``seeds``, as frames N×C×H×W in [0, 1]: slerp between the
    seeds' z, or for W-space generators (:attr:`Generator.w_space`) linear steps between their w
    (StyleGAN's practice). There each seed is mapped once with its own class (``label``, or else the
    class ``gen.sample(1, seed=s)`` draws), truncated toward ``w_avg`` by psi = ``truncation``, so
    keyframe i is the image ``gen.sample(1, labels=label, seed=s_i, truncation=psi)`` gives (to float
    rounding: batched matmuls round differently) and a conditional walk morphs between the seeds' classes. ``truncation`` for z-space generators
    resamples |z| as in :meth:`Generator.latents`."""
    if len(seeds) < 2:
        raise GanforgeError("interpolation needs at least two seeds")
    if gen.w_space:
        z = torch.cat([gen.latents(1, seed=s) for s in seeds])
        # unconditional: None (and --class is refused)
        y = torch.cat([gen.labels(1, label, s) for s in seeds]) if gen.num_classes else gen.labels(1, label, 0)
        w_keys = gen.mapping(z, y, truncation=truncation, ema=ema)
        ws = torch.stack([torch.lerp(w_keys[i], w_keys[(i + 1) % len(seeds)], t / frames_per_seed)
                          for i in range(len(seeds)) for t in range(frames_per_seed)])
        return gen.synthesize(ws, ema=ema)
    keys = torch.cat([gen.latents(1, seed=s, truncation=truncation) for s in seeds])
    zs = [slerp(keys[i], keys[(i + 1) % len(keys)], t / frames_per_seed)
          for i in range(len(keys)) for t in range(frames_per_seed)]
    z = torch.stack(zs)
    labels = gen.labels(len(z), label, 0) if gen.num_classes else None
    return gen.generate(z, labels, ema=ema)


def prompt_walk_frames(gen: Generator, prompts: list[str], seed: int = 0, frames_per_prompt: int = 24,
                       ema: bool = True, truncation: float = 1.0) -> torch.Tensor:
    """A text generator's closed walk through ``prompts`` (frames N×C×H×W in [0, 1]): one latent
    (``seed``), the sentence embedding moving in straight lines from prompt to prompt; frame
    ``i x frames_per_prompt`` is ``gen.sample(1, prompts=[prompts[i]], seed=seed)``."""
    if len(prompts) < 2:
        raise GanforgeError("a prompt walk needs at least two prompts (--prompt A --prompt B)")
    keys = gen.embed(prompts)
    text = torch.stack([torch.lerp(keys[i], keys[(i + 1) % len(keys)], t / frames_per_prompt)
                        for i in range(len(keys)) for t in range(frames_per_prompt)])
    z = gen.latents(1, seed, 1.0 if gen.w_space else truncation).expand(len(text), -1)
    return gen.generate(z, text, ema=ema, truncation=truncation if gen.w_space else 1.0)


def write_video(frames: torch.Tensor, path: str | Path, fps: int = 24, scale: int = 1,
                provenance: Provenance | None = None) -> Path:
    """Write frames (N×C×H×W in [0, 1]) as .gif (Pillow) or .mp4 (H.264 yuv420p through
    :class:`ganforge.video.io.VideoWriter`, which pads odd sizes by one edge pixel). ``provenance``:
    an MP4's container tags and, when asked, the watermark in every frame (a GIF has no place for
    the metadata; its frames are marked before the palette is made, which the mark may not survive)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise GanforgeError(f"{path}: use a .gif or .mp4 file name")
    if scale > 1:
        frames = torch.nn.functional.interpolate(frames, scale_factor=scale, mode="nearest")
    pils = [tensor_to_pil(f).convert("RGB") for f in frames]
    if suffix == ".mp4":
        from .video.io import VideoWriter

        with VideoWriter(path, fps, provenance=provenance) as writer:
            for img in pils:
                writer.write(np.asarray(img))
        return path
    if provenance is not None and provenance.watermark:
        from PIL import Image

        from .watermark import embed

        pils = [Image.fromarray(embed(np.asarray(p))) for p in pils]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    pils[0].save(tmp, save_all=True, append_images=pils[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path


def _load_gan_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest") -> Generator:
    return load_generator(run_dir, checkpoint_name=checkpoint_name)


register_run_task("gan", _load_gan_run)

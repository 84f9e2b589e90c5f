"""Load a trained generator (from a run directory or an exported file) and draw, save and
interpolate samples."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .config import GanConfig
from .errors import GanforgeError
from .imageio import save_image, tensor_to_pil
from .nets import GanNetSpec, build_gan
from .train import checkpoint


TRUNCATION_ROUNDS = 100  # resampling rounds before the exact inverse-CDF draw (bounded time)


class Generator:
    """A trained generator (EMA weights by default) with its metadata."""

    def __init__(self, G_ema: torch.nn.Module, G: torch.nn.Module, spec: GanNetSpec, class_names: list[str],
                 step: int, run_dir: Path, arch: str | None = None) -> None:
        self.G_ema, self.G, self.spec = G_ema.eval(), G.eval(), spec
        self.class_names, self.step, self.run_dir = class_names, step, run_dir  # run_dir: or the exported file
        self.arch = arch  # the registered architecture name; export needs it to rebuild the network

    num_classes = property(lambda self: self.spec.num_classes)
    channels = property(lambda self: self.spec.channels)
    resolution = property(lambda self: self.spec.resolution)
    z_dim = property(lambda self: self.spec.z_dim)

    @property
    def w_space(self) -> bool:
        """Style-based generators (stylegan2) truncate in W (toward ``w_avg``) in :meth:`generate`,
        not by resampling z in :meth:`latents`."""
        return hasattr(self.G_ema, "mapping") and hasattr(self.G_ema.mapping, "w_avg")

    def latents(self, n: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
        """``n`` latents; for z-space generators ``truncation`` < 1 resamples |z| above it. For
        W-space ones (:attr:`w_space`) z is returned as drawn: pass ``truncation`` to
        :meth:`generate` (or use :meth:`sample`), which lerps w toward ``w_avg`` by psi."""
        if not truncation > 0:  # also NaN: no sample has |z| <= 0, so resampling never ends
            raise GanforgeError(f"--truncation must be positive (1: none), got {truncation}")
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))
        if truncation < 1.0 and not self.w_space:  # resample |z| > truncation (the Gaussian-prior trick)
            g = torch.Generator().manual_seed(seed + 1)
            for _ in range(TRUNCATION_ROUNDS):
                if not (mask := z.abs() > truncation).any():
                    break
                z[mask] = torch.randn(int(mask.sum()), generator=g)
            if (mask := z.abs() > truncation).any():  # a tiny truncation: draw the rest by inverse CDF
                lo = torch.special.ndtr(torch.tensor(-float(truncation), dtype=torch.float64))
                u = torch.rand(int(mask.sum()), generator=g, dtype=torch.float64)
                z[mask] = torch.special.ndtri(lo + u * (1 - 2 * lo)).clamp(-truncation, truncation).float()
        return z

    def _labels(self, n: int, labels, seed: int) -> torch.Tensor | None:
        if not self.num_classes:
            if labels is not None:
                raise GanforgeError("this generator is unconditional; --class is not available")
            return None
        if labels is None:
            return torch.randint(0, self.num_classes, (n,), generator=torch.Generator().manual_seed(seed + 2))
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise GanforgeError(f"class must be in 0..{self.num_classes - 1} ({', '.join(self.class_names)})")
        return labels

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, ema: bool = True,
                 batch_size: int = 256, truncation: float = 1.0) -> torch.Tensor:
        """Images in [0, 1] for given latents (and labels). ``truncation`` (psi) applies here only
        to W-space generators: w = w_avg + psi (w - w_avg), with w_avg per class when conditional;
        z-space generators truncate in :meth:`latents`."""
        if not truncation >= 0:
            raise GanforgeError(f"--truncation must be >= 0 (1: none), got {truncation}")
        net = self.G_ema if ema else self.G
        kwargs = {"truncation_psi": float(truncation)} if self.w_space and truncation != 1.0 else {}
        out = []
        for i in range(0, len(z), batch_size):
            y = labels[i:i + batch_size] if labels is not None else None
            out.append(net(z[i:i + batch_size], y, **kwargs).float().add(1).div(2).clamp(0, 1))
        return torch.cat(out)

    def _network(self, ema: bool) -> tuple[torch.nn.Module, torch.device]:
        net = self.G_ema if ema else self.G
        return net, next(net.parameters()).device

    @torch.no_grad()
    def mapping(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation: float = 1.0,
                ema: bool = True) -> torch.Tensor:
        """ws ``(N, num_ws, w_dim)`` of a W-space generator (:attr:`w_space`), on its device:
        ``z`` (and the class, which the mapping network embeds) mapped once and pulled toward
        ``w_avg`` (per class) by psi = ``truncation``. Walks interpolate these, not z: W is where
        StyleGAN's images change most evenly, and ``synthesize(mapping(z, y, psi))`` is exactly
        what :meth:`generate` computes for ``(z, y)``."""
        if not self.w_space:
            raise GanforgeError("this generator has no W space (not style-based); interpolate its z instead")
        if not truncation >= 0:
            raise GanforgeError(f"--truncation must be >= 0 (1: none), got {truncation}")
        if self.num_classes and labels is None:
            raise GanforgeError("this generator is conditional: mapping needs a class for every latent")
        net, device = self._network(ema)
        return net.mapping(z.to(device), None if labels is None else labels.to(device), truncation_psi=float(truncation))

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor, ema: bool = True, batch_size: int = 256) -> torch.Tensor:
        """Images in [0, 1] (on the generator's device) for ws from :meth:`mapping` (or mixes of
        them), ``batch_size`` at a time."""
        net, device = self._network(ema)
        out = [net.synthesis(ws[i:i + batch_size].to(device)).float().add(1).div(2).clamp(0, 1)
               for i in range(0, len(ws), batch_size)]
        return torch.cat(out)

    def sample(self, n: int, labels=None, seed: int = 0, truncation: float = 1.0, ema: bool = True) -> torch.Tensor:
        """``n`` images as a float tensor N×C×H×W in [0, 1]; ``labels``: int, list or tensor."""
        z = self.latents(n, seed, 1.0 if self.w_space else truncation)
        return self.generate(z, self._labels(n, labels, seed), ema, truncation=truncation if self.w_space else 1.0)

    def sample_pil(self, n: int, **kwargs) -> list[Image.Image]:
        return [tensor_to_pil(x) for x in self.sample(n, **kwargs)]


def load_generator(run_dir: str | Path, *, checkpoint_name: str = "latest") -> Generator:
    """Load the generator of a GAN run directory (``checkpoint_name``: 'latest', 'best' or
    'step-N'), or of a file written by ``ganforge export`` (a ``.safetensors`` file, which holds one
    checkpoint: see docs/export.md). Runs of other tasks load through :func:`ganforge.runs.load_run`."""
    from .runs import load_checkpoint, require_task

    run_dir = Path(run_dir)
    if run_dir.is_file() or (run_dir.suffix == ".safetensors" and not run_dir.is_dir()):
        from .export import load_exported

        if checkpoint_name != "latest":
            raise GanforgeError(f"{run_dir} is an exported generator (one set of weights); "
                                "--checkpoint applies to run directories")
        return load_exported(run_dir)
    meta = require_task(run_dir, "gan")  # another task's run: a one-line error naming its command
    cfg = GanConfig.load(run_dir / "config.json")
    spec = GanNetSpec(**meta["spec"])
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    G, _ = build_gan(cfg.arch, spec)
    G_ema, _ = build_gan(cfg.arch, spec)
    checkpoint.restore_modules({"G": G, "G_ema": G_ema}, tensors, path)
    return Generator(G_ema, G, spec, meta.get("class_names", []), int(state["step"]), run_dir, arch=cfg.arch)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    return save_image(make_grid(images, nrow=nrow, padding=2, pad_value=1.0), path)


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
        y = torch.cat([gen._labels(1, label, s) for s in seeds]) if gen.num_classes else gen._labels(1, label, 0)
        w_keys = gen.mapping(z, y, truncation=truncation, ema=ema)
        ws = torch.stack([torch.lerp(w_keys[i], w_keys[(i + 1) % len(seeds)], t / frames_per_seed)
                          for i in range(len(seeds)) for t in range(frames_per_seed)])
        return gen.synthesize(ws, ema=ema)
    keys = torch.cat([gen.latents(1, seed=s, truncation=truncation) for s in seeds])
    zs = [slerp(keys[i], keys[(i + 1) % len(keys)], t / frames_per_seed)
          for i in range(len(keys)) for t in range(frames_per_seed)]
    z = torch.stack(zs)
    labels = gen._labels(len(z), label, 0) if gen.num_classes else None
    return gen.generate(z, labels, ema=ema)


def write_video(frames: torch.Tensor, path: str | Path, fps: int = 24, scale: int = 1) -> Path:
    """Write frames (N×C×H×W in [0, 1]) as .gif (Pillow) or .mp4 (PyAV, H.264 yuv420p)."""
    path = Path(path)
    if scale > 1:
        frames = torch.nn.functional.interpolate(frames, scale_factor=scale, mode="nearest")
    pils = [tensor_to_pil(f).convert("RGB") for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix.lower() == ".gif":
        pils[0].save(tmp, save_all=True, append_images=pils[1:], duration=int(1000 / fps), loop=0)
    elif path.suffix.lower() == ".mp4":
        import av

        w, h = pils[0].size
        w2, h2 = w + w % 2, h + h % 2  # yuv420p needs even sizes
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
            for img in pils:
                if (w2, h2) != (w, h):
                    img = img.resize((w2, h2))
                for packet in stream.encode(av.VideoFrame.from_image(img)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    else:
        raise GanforgeError(f"{path}: use a .gif or .mp4 file name")
    tmp.replace(path)
    return path

"""A trained GAN generator with its metadata: draw latents, generate, map to W and synthesise.
``ganforge.sample.load_generator`` loads one from a run directory or an exported file."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from .device import autocast, resolve_device, resolve_precision
from .errors import GanforgeError
from .imageio import tensor_to_pil
from .nets import GanNetSpec


TRUNCATION_ROUNDS = 100  # resampling rounds before the exact inverse-CDF draw (bounded time)


@torch.no_grad()
def sentence_embeddings(encoder, texts: list[str]) -> torch.Tensor:
    """What a text-conditional G and D take for ``texts``: the encoder's unit-length sentence
    embeddings x sqrt(dim) (unit variance per element, like z), float32 on the encoder's device."""
    return encoder.encode(list(texts)).float() * float(encoder.dim) ** 0.5


# published networks (ganforge.published): run in fp32 unless a precision is asked for
EXACT_ARCHS = ("stylegan2-official",)

class Generator:
    """A trained generator (EMA weights by default) with its metadata."""

    def __init__(self, G_ema: torch.nn.Module, G: torch.nn.Module, spec: GanNetSpec, class_names: list[str],
                 step: int, run_dir: Path, arch: str | None = None, text_encoder: torch.nn.Module | None = None) -> None:
        self.G_ema, self.G, self.spec = G_ema.eval(), G.eval(), spec
        self.text_encoder = text_encoder  # a text-to-image generator's frozen encoder (None: no text)
        self.class_names, self.step, self.run_dir = class_names, step, run_dir  # run_dir: or the exported file
        self.arch = arch  # the registered architecture name; export needs it to rebuild the network
        self.device, self.precision = next(G_ema.parameters()).device, "fp32"  # see :meth:`to`

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Generator":
        """Run the networks on ``device`` under ``precision`` (``ganforge.device`` resolves both, as
        for translators and inpainters). Latents are still drawn on the CPU, so a seed gives the same
        images anywhere up to float rounding; :meth:`generate` and :meth:`synthesize` return float32
        images on the CPU. Returns ``self``."""
        self.device = resolve_device(device)
        self.precision = self.precision_for(precision, self.device)
        self.G_ema.to(self.device)
        self.G.to(self.device)
        if self.text_encoder is not None:
            self.text_encoder.to(self.device, "fp32")
        return self

    def precision_for(self, precision: str, device: torch.device) -> str:
        """``precision`` resolved for this generator on ``device``: 'auto' is fp32 for the published
        networks (their images match the official code's; bf16 would not), else the device's choice."""
        if precision == "auto" and self.arch in EXACT_ARCHS:
            return "fp32"
        return resolve_precision(precision, device)

    @property
    def is_text(self) -> bool:
        """Trained with ``--text``: draws from prompts (:meth:`embed`, ``sample(n, prompts=...)``)."""
        return self.text_encoder is not None

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """The condition G takes for each prompt (float32, on the CPU). A generator without text,
        or a prompt that is not a non-empty string, is a one-line error."""
        if not self.is_text:
            raise GanforgeError("this run was not trained on text (train with --text); it takes no --prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise GanforgeError("every prompt must be a non-empty string")
        return sentence_embeddings(self.text_encoder, [p.strip() for p in prompts]).cpu()

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

    def labels(self, n: int, labels=None, seed: int = 0) -> torch.Tensor | None:
        """``n`` class labels for a conditional generator: ``labels`` (int, list or tensor; one value is
        repeated), or drawn from ``seed`` when None; None for an unconditional one."""
        if self.is_text:
            raise GanforgeError("this is a text-to-image run: give it prompts (--prompt TEXT), not classes")
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
        """Images in [0, 1] (float32, on the CPU) for given latents (and labels). ``truncation`` (psi) applies here only
        to W-space generators: w = w_avg + psi (w - w_avg), with w_avg per class when conditional;
        z-space generators truncate in :meth:`latents`."""
        if not truncation >= 0:
            raise GanforgeError(f"--truncation must be >= 0 (1: none), got {truncation}")
        net, device = self._network(ema)
        kwargs = {"truncation_psi": float(truncation)} if self.w_space and truncation != 1.0 else {}
        out = []
        with autocast(self.precision, device):
            for i in range(0, len(z), batch_size):
                y = labels[i:i + batch_size].to(device) if labels is not None else None
                out.append(net(z[i:i + batch_size].to(device), y, **kwargs).float().add(1).div(2).clamp(0, 1).cpu())
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
        with autocast(self.precision, device):
            return net.mapping(z.to(device), None if labels is None else labels.to(device),
                               truncation_psi=float(truncation))

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor, ema: bool = True, batch_size: int = 256) -> torch.Tensor:
        """Images in [0, 1] (float32, on the CPU) for ws from :meth:`mapping` (or mixes of them),
        ``batch_size`` at a time."""
        net, device = self._network(ema)
        with autocast(self.precision, device):
            out = [net.synthesis(ws[i:i + batch_size].to(device)).float().add(1).div(2).clamp(0, 1).cpu()
                   for i in range(0, len(ws), batch_size)]
        return torch.cat(out)

    def sample(self, n: int, labels=None, seed: int = 0, truncation: float = 1.0, ema: bool = True,
               prompts: list[str] | None = None) -> torch.Tensor:
        """``n`` images as a float tensor N×C×H×W in [0, 1]; ``labels``: int, list or tensor.
        A text generator takes ``prompts`` instead: ``n`` images per prompt, prompt after prompt,
        the i-th image of every prompt from the same latent."""
        if prompts is not None or self.is_text:
            if prompts is None:
                raise GanforgeError("this is a text-to-image run: give it prompts (--prompt TEXT)")
            if labels is not None:
                raise GanforgeError("give prompts or classes, not both")
            text = self.embed(prompts)
            z = self.latents(n, seed, 1.0 if self.w_space else truncation).repeat(len(text), 1)
            return self.generate(z, text.repeat_interleave(n, dim=0), ema,
                                 truncation=truncation if self.w_space else 1.0)
        z = self.latents(n, seed, 1.0 if self.w_space else truncation)
        return self.generate(z, self.labels(n, labels, seed), ema, truncation=truncation if self.w_space else 1.0)

    def sample_pil(self, n: int, **kwargs) -> list[Image.Image]:
        return [tensor_to_pil(x) for x in self.sample(n, **kwargs)]

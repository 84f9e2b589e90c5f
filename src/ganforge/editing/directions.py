"""Semantic directions in W, found without labels or with them.

- **SeFa** (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the
  eigenvectors of AᵀA, A the style affine weights (rows normalised) of the layers in a range, largest
  eigenvalue first; nothing is sampled.
- **PCA** in W (Härkönen et al. 2020, "GANSpace"): principal axes of 10 000 mapped z.
- **Boundary** (Shen et al. 2020, "InterFaceGAN"): the unit normal of a linear classifier (logistic
  regression, in torch) between two sets of w: a conditional model's classes (mapped z of one class
  against the others or another class), or two folders of example images projected into W.

Each direction is a unit vector with a *scale*: the standard deviation of mapped w along it (for a
boundary, half the distance between the two sets' means along it, so strength 2 takes the mean of
one set to the mean of the other), so a strength is in standard deviations of the model's own W
and -3..3 is a comparable range for every method. A set of directions is saved as safetensors
(``vectors`` K×w_dim, ``scales`` K, ``layers`` K×2 [start, end) of the ws they act on, names in the
metadata).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..generator import Generator
from .common import EditError, num_ws, w_dim

FORMAT = "ganforge.directions"
METHODS = ("sefa", "pca", "boundary")
REG = 1.0  # L2 penalty of the boundary classifier (w centred, one scale): a normal near the class-mean
# difference that moves the class, not a max-margin normal that only separates the training w


@dataclass
class Directions:
    names: list[str]
    vectors: torch.Tensor  # K × w_dim, unit rows
    scales: torch.Tensor  # K
    layers: list[tuple[int, int]]  # [start, end) ws indices each direction acts on
    info: dict | None = None

    def __len__(self) -> int:
        return len(self.names)

    def get(self, name: str) -> tuple[torch.Tensor, float, tuple[int, int]]:
        if name not in self.names:
            raise EditError(f"unknown direction {name!r}; this file has {', '.join(self.names[:12])}"
                            + (" ..." if len(self.names) > 12 else ""))
        i = self.names.index(name)
        return self.vectors[i], float(self.scales[i]), self.layers[i]

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise EditError(f"{path}: directions are written as .safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"vectors": self.vectors.float().contiguous(), "scales": self.scales.float().contiguous(),
                   "layers": torch.tensor(self.layers, dtype=torch.int64).reshape(-1, 2)}, str(tmp),
                  metadata={"format": FORMAT, "names": json.dumps(self.names), "info": json.dumps(self.info or {})})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Directions":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise EditError(f"directions file not found: {path}")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise EditError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from None
        if meta.get("format") != FORMAT or set(tensors) != {"vectors", "scales", "layers"}:
            raise EditError(f"{path} is not a ganforge directions file (write one with: ganforge directions MODEL ...)")
        names = json.loads(meta["names"])
        return cls(names, tensors["vectors"], tensors["scales"], [tuple(map(int, r)) for r in tensors["layers"]],
                   json.loads(meta.get("info", "{}")))

    def check(self, gen: Generator) -> None:
        if self.vectors.shape[1] != w_dim(gen) or any(b > num_ws(gen) for _, b in self.layers):
            raise EditError(f"these directions are for another model (w_dim {self.vectors.shape[1]}); "
                            f"this one has w_dim {w_dim(gen)} and {num_ws(gen)} ws")


def parse_layers(layers: str | tuple[int, int] | None, gen: Generator) -> tuple[int, int]:
    """``None``/'all' -> every ws; 'A-B' or (A, B) -> ws A..B inclusive/[A, B), checked."""
    n = num_ws(gen)
    if layers is None or layers == "all":
        return 0, n
    if isinstance(layers, str):
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", layers)
        if not m:
            raise EditError(f"--layers must be 'all' or A-B (ws indices 0..{n - 1}), got {layers!r}")
        start, end = int(m.group(1)), int(m.group(2)) + 1
    else:
        start, end = int(layers[0]), int(layers[1])
    if not 0 <= start < end <= n:
        raise EditError(f"layer range {layers!r} is outside this model's ws 0..{n - 1}")
    return start, end


@torch.no_grad()
def affine_weights(gen: Generator) -> list[tuple[int, torch.Tensor]]:
    """(ws index, weight out×w_dim) of every style affine layer in the synthesis network, found by
    running it once with each ws row filled with its own index (works for both architectures)."""
    net = gen.G_ema
    found: list[tuple[int, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: found.append((int(round(inp[0][0, 0].item())), mod.weight)))
             for name, m in net.synthesis.named_modules() if name.endswith("affine")]
    try:
        n, d = num_ws(gen), w_dim(gen)
        tagged = torch.arange(n, dtype=torch.float32)[None, :, None].expand(1, n, d).to(gen.device)
        net.synthesis(tagged)
    finally:
        for h in hooks:
            h.remove()
    return [(k, w.detach().float().cpu()) for k, w in found]


@torch.no_grad()
def sample_w(gen: Generator, n: int, seed: int = 0, label: int | None = None) -> torch.Tensor:
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    y = None
    if gen.num_classes:
        y = (torch.full((n,), label, dtype=torch.long) if label is not None
             else torch.randint(0, gen.num_classes, (n,), generator=torch.Generator().manual_seed(seed + 1)))
    return torch.cat([gen.mapping(z[i:i + 2048], None if y is None else y[i:i + 2048])[:, 0].float().cpu()
                      for i in range(0, n, 2048)])


def _scales(vectors: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ((w - w.mean(0)) @ vectors.t()).std(0)


def sefa(gen: Generator, k: int = 8, layers: str | tuple[int, int] | None = None, n_scale: int = 2000) -> Directions:
    """The top ``k`` SeFa directions of the style affines feeding ws ``layers`` (default: all)."""
    start, end = parse_layers(layers, gen)
    rows = [w for idx, w in affine_weights(gen) if start <= idx < end]
    if not rows:
        raise EditError(f"no style layer reads ws {start}..{end - 1}")
    A = torch.cat(rows).double()
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(A.t() @ A)
    order = values.argsort(descending=True)[:k]
    vecs = vectors[:, order].t().float().contiguous()
    tag = "" if (start, end) == (0, num_ws(gen)) else f"@{start}-{end - 1}"
    return Directions([f"sefa-{i}{tag}" for i in range(len(vecs))], vecs, _scales(vecs, sample_w(gen, n_scale)),
                      [(start, end)] * len(vecs), {"method": "sefa", "eigenvalues": values[order].tolist()})


def pca(gen: Generator, k: int = 8, layers: str | tuple[int, int] | None = None, n: int = 10_000,
        seed: int = 0) -> Directions:
    """The top ``k`` principal axes of ``n`` mapped z (GANSpace), applied to ws ``layers``."""
    start, end = parse_layers(layers, gen)
    w = sample_w(gen, n, seed)
    _, s, v = torch.linalg.svd((w - w.mean(0)).double(), full_matrices=False)
    vecs = v[:k].float().contiguous()
    tag = "" if (start, end) == (0, num_ws(gen)) else f"@{start}-{end - 1}"
    return Directions([f"pca-{i}{tag}" for i in range(len(vecs))], vecs, (s[:k] / (n - 1) ** 0.5).float(),
                      [(start, end)] * len(vecs), {"method": "pca", "explained_variance": (s[:k] ** 2 / (n - 1)).tolist()})


def fit_boundary(positive: torch.Tensor, negative: torch.Tensor, steps: int = 500) -> tuple[torch.Tensor, float]:
    """(unit normal pointing to ``positive``, training accuracy) of a logistic regression on w."""
    if len(positive) < 2 or len(negative) < 2:
        raise EditError("a boundary needs at least 2 examples on each side")
    x = torch.cat([positive, negative]).double()
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).double()
    mean, std = x.mean(0), x.std(0).pow(2).mean().sqrt().clamp_min(1e-8)  # one scale for all of w
    xs = (x - mean) / std
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ weight + bias, y) + REG * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = float(((xs @ weight + bias > 0).double() == y).double().mean())
        normal = weight / std  # back to unscaled w coordinates
    return (normal / normal.norm()).float(), acc


def boundary_from_classes(gen: Generator, target: int, source: int | None = None, n: int = 2000,
                          layers: str | tuple[int, int] | None = None, seed: int = 0) -> Directions:
    """InterFaceGAN on a conditional model: mapped z of class ``target`` against class ``source``
    (or all other classes); the direction points toward ``target``."""
    if not gen.num_classes:
        raise EditError("a boundary from classes needs a conditional model; give two example folders instead")
    for c in (target, source):
        if c is not None and not 0 <= c < gen.num_classes:
            raise EditError(f"class must be in 0..{gen.num_classes - 1}")
    pos = sample_w(gen, n, seed, label=target)
    if source is None:
        others = [c for c in range(gen.num_classes) if c != target]
        neg = torch.cat([sample_w(gen, max(2, n // len(others)), seed + 10 + c, label=c) for c in others])
    else:
        neg = sample_w(gen, n, seed + 10, label=source)
    name = f"class-{target}" + ("" if source is None else f"-vs-{source}")
    return _boundary(gen, pos, neg, name, layers, {"method": "boundary", "from": "classes", "target": target,
                                                   "source": source})


def boundary_from_folders(gen: Generator, positive: str | os.PathLike, negative: str | os.PathLike, *,
                          name: str = "boundary", steps: int = 200, layers: str | tuple[int, int] | None = None,
                          **project_kwargs) -> Directions:
    """InterFaceGAN from two folders of example images, each projected into W (``steps`` each)."""
    from ..imageio import is_image_file
    from .project import project

    sets = []
    for folder in (positive, negative):
        files = sorted(p for p in Path(folder).iterdir() if is_image_file(p)) if Path(folder).is_dir() else []
        if len(files) < 2:
            raise EditError(f"{folder}: a boundary needs a folder with at least 2 images")
        sets.append(torch.stack([project(gen, f, steps=steps, space="w", frames=0, **project_kwargs).ws[0, 0]
                                 for f in files]))
    return _boundary(gen, sets[0], sets[1], name, layers, {"method": "boundary", "from": "folders",
                                                           "positive": str(positive), "negative": str(negative)})


def _boundary(gen, pos, neg, name, layers, info) -> Directions:
    start, end = parse_layers(layers, gen)
    normal, acc = fit_boundary(pos, neg)
    info["train_accuracy"] = acc
    gap = float((pos.mean(0) - neg.mean(0)) @ normal)  # half of it per unit: strength 2 = one mean to the other
    scale = torch.tensor([abs(gap) / 2])
    return Directions([name], normal[None], scale, [(start, end)], info)


def find_directions(gen: Generator, method: str, **kwargs) -> Directions:
    if method == "sefa":
        return sefa(gen, **kwargs)
    if method == "pca":
        return pca(gen, **kwargs)
    if method == "boundary":
        if "target" in kwargs:
            return boundary_from_classes(gen, **kwargs)
        return boundary_from_folders(gen, **kwargs)
    raise EditError(f"unknown method {method!r}; use {', '.join(METHODS)}")

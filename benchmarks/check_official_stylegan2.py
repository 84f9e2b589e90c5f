"""Parity of ganforge's published-network loader with the official StyleGAN2-ADA code.

    python benchmarks/check_official_stylegan2.py /path/to/stylegan2-ada-pytorch [--out results.json]

The argument is an extracted checkout of https://github.com/NVlabs/stylegan2-ada-pytorch (nothing
of it is copied here). For each configuration the script builds the official ``Generator``,
``Discriminator`` and ``AugmentPipe`` with random weights on the CPU (every parameter and buffer
randomised, so noise strengths, biases and ``w_avg`` all matter), pickles them the way the official
training loop writes snapshots (``pickle.dump(dict(training_set_kwargs=..., G=..., D=...,
G_ema=..., augment_pipe=...))`` with ``torch_utils.persistence`` active), loads the file with
``ganforge.load_generator`` (which runs nothing from it) and compares

    ganforge: gen.generate(z, labels, truncation=psi)
    official: (G_ema(z, one_hot(labels), truncation_psi=psi, noise_mode='const', force_fp32=True) * 0.5 + 0.5).clamp(0, 1)

in fp32 on the CPU, for psi in (1, 0.7, 0.5), and the pickle's discriminator (randomised too) read by
``ganforge.published.load.read_discriminator`` against the official ``D(img, one_hot(labels),
force_fp32=True)`` on random images (difference relative to max(1, |D|)). Prints the max abs
difference per configuration.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import tempfile
import types
from pathlib import Path

import torch

CONFIGS = {
    # name: (G kwargs, c_dim)
    "uncond-res32-map8-fp16res2-clamp256": dict(
        z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=1024, channel_max=64, num_fp16_res=2, conv_clamp=256, architecture="skip")),
    "cond10-res32-map2-cifarlike": dict(
        z_dim=64, c_dim=10, w_dim=64, img_resolution=32, img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=2048, channel_max=64, num_fp16_res=4, conv_clamp=256, architecture="skip")),
    "uncond-res64-map4-clamp0.5-active": dict(
        z_dim=32, c_dim=0, w_dim=32, img_resolution=64, img_channels=3,
        mapping_kwargs=dict(num_layers=4),
        synthesis_kwargs=dict(channel_base=1024, channel_max=32, num_fp16_res=0, conv_clamp=0.5, architecture="skip")),
    "cond3-res16-gray-orig": dict(
        z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=1,
        mapping_kwargs=dict(num_layers=2, embed_features=8, layer_features=24),
        synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture="orig")),
}


def import_official(root: Path):
    sys.path.insert(0, str(root))
    try:
        import requests  # noqa: F401  (dnnlib.util imports it; only its URL helpers use it)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    import dnnlib  # noqa: F401
    from training import augment, networks

    return networks, augment


def randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("resample_filter") or not t.is_floating_point():
                continue
            if name.endswith(("noise_strength", "bias")) or "w_avg" in name:
                t.add_(torch.randn(t.shape, generator=g) * 0.3)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * t.std().clamp(min=1.0) if t.numel() > 1 else t)


def write_snapshot(path: Path, networks, augment, kwargs: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the official constructors draw from the global RNG
    G = networks.Generator(**kwargs).train()
    D = networks.Discriminator(c_dim=kwargs["c_dim"], img_resolution=kwargs["img_resolution"],
                               img_channels=kwargs["img_channels"],
                               block_kwargs=dict(), mapping_kwargs=dict(), epilogue_kwargs=dict(mbstd_group_size=4))
    randomise(G, seed)
    randomise(D, seed + 2)
    G_ema = copy.deepcopy(G)
    randomise(G_ema, seed + 1)  # G and G_ema differ, as in a run
    pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                               contrast=1, lumaflip=1, hue=1, saturation=1)
    import dnnlib

    snapshot = dict(training_set_kwargs=dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                         path="data.zip", use_labels=bool(kwargs["c_dim"])))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", pipe)]:
        snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
    with open(path, "wb") as f:
        pickle.dump(snapshot, f)
    return snapshot["G_ema"], snapshot["D"]


def compare_D(official_D, path: Path, c_dim: int, n: int = 8) -> float:
    """max |ganforge D - official D| on random images (and classes), fp32: the pickle's D, read by
    ganforge.published.load.read_discriminator."""
    from ganforge.published.load import read_discriminator

    D = read_discriminator(path)
    g = torch.Generator().manual_seed(9)
    img = torch.randn(n, official_D.img_channels, official_D.img_resolution, official_D.img_resolution, generator=g)
    labels = torch.arange(n) % c_dim if c_dim else None
    c = torch.nn.functional.one_hot(labels, c_dim).float() if c_dim else torch.zeros(n, 0)
    with torch.no_grad():
        ref = official_D(img, c, force_fp32=True).reshape(-1)
        ours = D(img, labels)
    return float((ours - ref).abs().max()), float(ref.abs().max())


def compare(official_G, path: Path, c_dim: int, n: int = 6) -> dict:
    import ganforge

    gen = ganforge.load_generator(path)
    z = torch.randn(n, official_G.z_dim, generator=torch.Generator().manual_seed(7))
    labels = torch.arange(n) % c_dim if c_dim else None
    c = torch.nn.functional.one_hot(labels, c_dim).float() if c_dim else torch.zeros(n, 0)
    out = {}
    for psi in (1.0, 0.7, 0.5):
        with torch.no_grad():
            ref = official_G(z, c, truncation_psi=psi, noise_mode="const", force_fp32=True)
        ref01 = (ref * 0.5 + 0.5).clamp(0, 1)
        ours = gen.generate(z, labels, truncation=psi)
        out[f"psi={psi}"] = {"max_abs_diff": float((ours - ref01).abs().max()),
                             "raw_max_abs_diff": float((gen.G_ema(z, labels, truncation_psi=psi) - ref).abs().max()),
                             "ref_std": float(ref.std())}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("official", type=Path, help="extracted NVlabs/stylegan2-ada-pytorch checkout")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    networks, augment = import_official(args.official.resolve())
    results = {"torch": torch.__version__}
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kwargs) in enumerate(CONFIGS.items()):
            path = Path(tmp) / f"{name}.pkl"
            official_G, official_D = write_snapshot(path, networks, augment, kwargs, seed=100 + 10 * i)
            res = compare(official_G, path, kwargs["c_dim"])
            d_diff, d_scale = compare_D(official_D, path, kwargs["c_dim"])
            res["D"] = {"max_abs_diff": d_diff, "max_abs_output": d_scale}
            results[name] = res
            m = max(r["max_abs_diff"] for k, r in res.items() if k != "D")
            raw = max(r["raw_max_abs_diff"] for k, r in res.items() if k != "D")
            worst = max(worst, m, d_diff / max(1.0, d_scale))
            print(f"{name}: max |ganforge - official| in [0,1] = {m:.3g} (raw output {raw:.3g}, "
                  f"output std {res['psi=1.0']['ref_std']:.3g}); D: {d_diff:.3g} (|D| up to {d_scale:.3g})")
    results["worst_max_abs_diff"] = worst
    print(f"worst: {worst:.3g} ({'PASS' if worst <= 1e-4 else 'FAIL'} at 1e-4)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())

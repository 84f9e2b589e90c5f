"""Parity of ganforge's rosinality-layout loader with rosinality's own stylegan2-pytorch code.

    python benchmarks/check_rosinality_stylegan2.py /path/to/stylegan2-pytorch [--out results.json]

The argument is an extracted checkout of https://github.com/rosinality/stylegan2-pytorch (at
least ``model.py`` and ``op/``; nothing of it is copied here). Its custom ops compile CUDA
extensions at import time; on the CPU its code never calls them (``fused_leaky_relu`` and
``upfirdn2d`` take their reference paths for CPU tensors, ``conv2d_gradfix`` falls back to
``F.conv2d``), so the script imports it with ``torch.utils.cpp_extension.load`` answering None
and runs rosinality's own CPU forward. For each configuration it builds rosinality's
``Generator`` with random weights (every parameter and noise buffer randomised, noise strengths
and biases non-zero), saves ``{"g_ema": state_dict, "latent_avg": ...}`` the way its scripts do,
loads the file with ``ganforge.load_generator`` and compares

    ganforge: gen.generate(z, truncation=psi)
    rosinality: (g_ema([z], truncation=psi, truncation_latent=latent_avg, randomize_noise=False)[0] * 0.5 + 0.5).clamp(0, 1)

in fp32 on the CPU for psi in (1, 0.7, 0.5); a file without ``latent_avg`` is checked at psi = 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

CONFIGS = {  # name: rosinality Generator(size, style_dim, n_mlp, channel_multiplier)
    "size32-style64-mlp8-cm2": dict(size=32, style_dim=64, n_mlp=8, channel_multiplier=2),
    "size64-style128-mlp2-cm1": dict(size=64, style_dim=128, n_mlp=2, channel_multiplier=1),
    "size128-style32-mlp4-cm2": dict(size=128, style_dim=32, n_mlp=4, channel_multiplier=2),
}


def import_rosinality(root: Path):
    import torch.utils.cpp_extension as ext

    real = ext.load
    ext.load = lambda *a, **k: None  # the CUDA extensions: never called for CPU tensors
    sys.path.insert(0, str(root))
    try:
        import model  # rosinality's model.py (imports its op package)
    finally:
        ext.load = real
    return model


def randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("kernel"):
                continue
            if name.endswith(("noise.weight", "bias")):
                t.add_(torch.randn(t.shape, generator=g) * 0.3)
            elif name.startswith("noises."):
                t.copy_(torch.randn(t.shape, generator=g))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rosinality", type=Path, help="extracted rosinality/stylegan2-pytorch checkout")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = import_rosinality(args.rosinality.resolve())
    import ganforge

    results, worst = {"torch": torch.__version__}, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(CONFIGS.items()):
            torch.manual_seed(200 + i)
            g = model.Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"],
                                channel_multiplier=cfg["channel_multiplier"]).eval()
            randomise(g, 300 + i)
            with torch.no_grad():
                latent_avg = g.mean_latent(4096)[0]
            z = torch.randn(4, cfg["style_dim"], generator=torch.Generator().manual_seed(7))
            res = {}
            for with_avg in (True, False):
                path = Path(tmp) / f"{name}-{with_avg}.pt"
                ckpt = {"g_ema": g.state_dict(), "args": argparse.Namespace(size=cfg["size"])}
                if with_avg:
                    ckpt["latent_avg"] = latent_avg
                torch.save(ckpt, path)
                gen = ganforge.load_generator(path)
                for psi in ((1.0, 0.7, 0.5) if with_avg else (1.0,)):
                    with torch.no_grad():
                        ref = g([z], truncation=psi, truncation_latent=latent_avg, randomize_noise=False)[0]
                    ref01 = (ref * 0.5 + 0.5).clamp(0, 1)
                    diff = float((gen.generate(z, truncation=psi) - ref01).abs().max())
                    with torch.no_grad():
                        raw = float((gen.G_ema(z, None, truncation_psi=psi) - ref).abs().max())
                    res[f"psi={psi}{'' if with_avg else ' (no latent_avg)'}"] = {
                        "max_abs_diff": diff, "raw_max_abs_diff": raw, "ref_std": float(ref.std())}
            results[name] = res
            m = max(r["max_abs_diff"] for r in res.values())
            worst = max(worst, m)
            raw = max(r["raw_max_abs_diff"] for r in res.values())
            print(f"{name}: max |ganforge - rosinality| in [0,1] = {m:.3g} (raw output {raw:.3g}, "
                  f"output std {res['psi=1.0']['ref_std']:.3g})")
    results["worst_max_abs_diff"] = worst
    print(f"worst: {worst:.3g} ({'PASS' if worst <= 1e-4 else 'FAIL'} at 1e-4)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())

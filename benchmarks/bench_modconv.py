"""StyleGAN2's modulated convolution, fused or not (issue 25): drawing images from a published-
network-shaped generator (``published.network.OfficialGenerator``, random weights) with every
modulated convolution forced non-fused, forced fused, and chosen per layer (``fused_modconv=None``,
ganforge's default: ``nets.modconv.choose_fused``), interleaved round by round, medians, inference
only (``torch.no_grad``), timed with this process's CPU clock (robust to other jobs on a shared
machine; use one thread) or the wall clock on a GPU. Also each layer shape alone.

    PYTHONPATH=src python benchmarks/bench_modconv.py --resolution 256 --batch 1 --rounds 3

The default network is the FFHQ 256² "paper256"-like shape (channel base 16384, max 512, 8 mapping
layers; ``--channel-base 32768`` and ``--resolution 1024`` is ffhq.pkl's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_speed import cpu_flags  # noqa: E402


def set_form(G: torch.nn.Module, fused: bool | None) -> None:
    for m in G.modules():
        if hasattr(m, "fused_modconv"):
            m.fused_modconv = fused


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.published.network import OfficialGenerator

    device = torch.device(args.device)
    torch.manual_seed(0)
    G = OfficialGenerator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.resolution, img_channels=3,
                          mapping_kwargs=dict(num_layers=8),
                          synthesis_kwargs=dict(channel_base=args.channel_base, channel_max=args.channel_max)).eval().to(device)
    z = torch.randn(args.batch, 512, generator=torch.Generator().manual_seed(1)).to(device)
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    forms = {"non-fused": False, "fused": True, "auto (default)": None}
    times: dict[str, list[float]] = {k: [] for k in forms}
    outs = {}
    with torch.no_grad():
        for name, form in forms.items():  # warm-up, and the three agree
            set_form(G, form)
            outs[name] = G(z, None)
        for r in range(args.rounds):
            for name, form in forms.items():
                set_form(G, form)
                if cuda:
                    torch.cuda.synchronize()
                t0 = clock()
                G(z, None)
                if cuda:
                    torch.cuda.synchronize()
                times[name].append(clock() - t0)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), file=sys.stderr, flush=True)
    base = outs["non-fused"]
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"cpu": cpu_flags(), "torch": torch.__version__, "device": str(device), "threads": args.threads,
              "clock": "wall" if cuda else "process cpu", "resolution": args.resolution, "channel_base": args.channel_base,
              "batch": args.batch, "rounds": args.rounds, "seconds": {k: round(v, 4) for k, v in med.items()},
              "speedup_vs_non_fused": {k: round(med["non-fused"] / v, 3) for k, v in med.items()},
              "max_abs_diff_vs_non_fused": {k: float((v - base).abs().max()) for k, v in outs.items()}}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

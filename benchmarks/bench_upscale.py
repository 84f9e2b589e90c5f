"""``upscale`` of a 512² image against a plain forward of the *same* network, interleaved in one run.

The network is an RRDBNet with random weights saved in the published Real-ESRGAN layout and loaded
back through :func:`ganforge.restore.zoo.build_upscaler` (timing does not depend on the values).
"plain" is ``net(x)`` under ``torch.inference_mode()`` on a ready 1×3×H×W tensor; "upscale" is
:func:`ganforge.restore.upscale.upscale_image` on the C×H×W image, everything included (input
checks, precision/device resolution, padding rules, clamp, CPU output). The ratio is
plain time / upscale time (1.0 = no overhead; goal ≥ 0.95), from the median and from the minimum
wall time (the minimum is the least disturbed by other processes on a shared machine), and from
the process CPU time. ``--tile`` adds a tiled run for information (tiles recompute their overlap
and halo, so it is slower by design).

    python benchmarks/bench_upscale.py [--size 512] [--nb 23] [--repeats 3] [--threads 2] [--tile 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--nb", type=int, default=23, help="RRDB blocks (23: RealESRGAN_x4plus; 6: the anime model)")
    parser.add_argument("--nf", type=int, default=64)
    parser.add_argument("--scale", type=int, default=4, choices=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--tile", type=int, default=0, help="also time a tiled upscale with this tile size")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ganforge.device import autocast, resolve_device, resolve_precision
    from ganforge.nets.rrdb import RRDBNet
    from ganforge.restore.upscale import upscale_image
    from ganforge.restore.zoo import build_upscaler

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    torch.save({"params_ema": RRDBNet(nf=args.nf, nb=args.nb, scale=args.scale).state_dict()}, tmp / "rrdb.pth")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    net = build_upscaler(tmp / "rrdb.pth").to(device)
    image = torch.rand(3, args.size, args.size)
    x = image[None].to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def plain() -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            out = net(x)
        sync()
        return out

    def ours() -> torch.Tensor:
        out = upscale_image(net, image, precision=precision, device=device)
        sync()
        return out

    def tiled() -> torch.Tensor:
        out = upscale_image(net, image, tile=args.tile, precision=precision, device=device)
        sync()
        return out

    runs = {"plain": plain, "upscale": ours}
    if args.tile:
        runs["upscale_tiled"] = tiled
    upscale_image(net, image[:, :64, :64], precision=precision, device=device)  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.repeats):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))  # interleaved, alternating order
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = runs[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            del out
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s (cpu {cpu[k][-1]:.1f} s)" for k, v in times.items()),
              flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "device": str(device), "precision": precision, "threads": args.threads, "size": args.size,
        "network": f"RRDBNet nf={args.nf} nb={args.nb} ×{args.scale}", "repeats": args.repeats,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "min_seconds": {k: round(v, 3) for k, v in best.items()},
        "median_cpu_seconds": {k: round(v, 2) for k, v in med_cpu.items()},
        "speed_ratio_upscale_vs_plain": round(med["plain"] / med["upscale"], 3),
        "speed_ratio_upscale_vs_plain_min": round(best["plain"] / best["upscale"], 3),
        "speed_ratio_upscale_vs_plain_cpu": round(med_cpu["plain"] / med_cpu["upscale"], 3),
    }
    if args.tile:
        result["tile"] = args.tile
        result["speed_ratio_tiled_vs_plain"] = round(med["plain"] / med["upscale_tiled"], 3)
    print(json.dumps(result, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Upper bounds on CPU throughput from arithmetic alone: how many frames/s or images/s a network
could reach if every multiply-add ran at this machine's measured matrix-multiply peak.

It counts the FLOPs of one forward (torch.utils.flop_counter) of
- AdaIN's video path at 640x360: VGG19 up to relu4_1 + the relu4_1 decoder (``stylize-video``),
- Inception-v3 at 299x299 (FID/KID/PR features; torchvision's module, random weights, same layers),
measures a large square matmul in fp32 and (where the CPU has native bf16) bf16 autocast with the
threads given, and prints FLOPs / peak as the best possible rate. A goal above that bound needs a
smaller network or fewer pixels, not a faster implementation. Usage:

    python benchmarks/compute_bounds.py --threads 2 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def _flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def video_flops() -> int:
    from ganforge.nets.adain_decoder import AdaINDecoder
    from ganforge.nets.vgg import VGGEncoder

    enc, dec = VGGEncoder(), AdaINDecoder()
    x = torch.zeros(1, 3, 360, 640)
    return _flops(lambda: dec(enc.encode(x)))


def inception_flops() -> int:
    """torchvision's Inception-v3: the same layers as torch-fidelity's FID network (which differs
    only in pooling details that cost nothing), random weights: FLOPs need shapes only."""
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    x = torch.zeros(1, 3, 299, 299)
    return _flops(lambda: net(x))


def matmul_peak(dtype: str, size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a size x size matmul, best of ``repeats`` (fp32, or bf16 autocast)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.device import resolve_precision

    native_bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    peaks = {"fp32": matmul_peak("fp32")}
    if native_bf16:
        peaks["bf16"] = matmul_peak("bf16")
    rows = {"video AdaIN 640x360 (VGG19 relu4_1 + decoder)": video_flops()}
    rows["Inception-v3 299x299 (FID features)"] = inception_flops()
    out = {"threads": args.threads, "matmul_gflops": {k: round(v, 1) for k, v in peaks.items()}, "networks": {}}
    print(f"matmul peak, {args.threads} thread(s): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    for name, flops in rows.items():
        bounds = {k: round(v * 1e9 / flops, 2) for k, v in peaks.items()}
        out["networks"][name] = {"gflop": round(flops / 1e9, 2), "max_per_s": bounds}
        print(f"{name}: {flops / 1e9:.1f} GFLOP -> at most " + ", ".join(f"{v} /s ({k})" for k, v in bounds.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

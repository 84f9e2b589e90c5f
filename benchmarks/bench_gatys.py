"""Gatys seconds per optimiser iteration (one forward + backward through VGG19 to relu5_1) at 256²
and 512², fp32 and bf16 autocast (+ channels_last). Uses vgg19-caffe when available.

    GANFORGE_WEIGHTS_DIR=../shared/assets/weights python benchmarks/bench_gatys.py [--iterations 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.errors import WeightsError
    from ganforge.nets.vgg import VGGEncoder, load_vgg
    from ganforge.style.gatys import gatys, style_targets

    try:
        encoder, source = load_vgg("vgg19-caffe"), "vgg19-caffe"
    except WeightsError:
        encoder, source = VGGEncoder("torchvision", "caffe"), "random"
    results = {"weights": source, "threads": args.threads, "load_avg": os.getloadavg()[0]}
    for size in (int(s) for s in args.sizes.split(",")):
        content = torch.rand(1, 3, size, size)
        targets = [style_targets(encoder, torch.rand(1, 3, size, size))]
        for autocast in (False, True):
            gatys(content, targets, [1.0], encoder, iterations=1, optimizer="adam", autocast=autocast)  # warm-up
            start = time.perf_counter()
            res = gatys(content, targets, [1.0], encoder, iterations=args.iterations, optimizer="adam", autocast=autocast)
            per_iter = (time.perf_counter() - start) / (len(res.history) - 1)
            results[f"{size}_{'bf16' if autocast else 'fp32'}_s_per_iter"] = round(per_iter, 3)
            encoder.to(memory_format=torch.contiguous_format)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Fingerprinted training (``train --fingerprint``, issue 21 item 5) on conditional MNIST 32x32:
the same recipe and budget with and without a fingerprint (benchmarks/quality_defaults.py's
``cmnist32``), then

- the code's bit accuracy on the fingerprinted generator's samples (tensors, and the PNG files
  ``ganforge sample`` writes, which also carry the watermark), and the share detected (p < 1e-4);
- the same decoder on the plain run's samples and on real test digits (false detections);
- the FID cost: domain FID / precision / recall of both runs (n samples vs ``mnist:test``);
- the pair's own check (held-out bit accuracy, PSNR of the fingerprint).

    OMP_NUM_THREADS=1 python benchmarks/fingerprint_mnist.py --out runs/fingerprint [--plain DIR] [--strength S]

``--plain DIR``: an existing plain run of the same recipe and seed (e.g. quality_defaults.py's
``cmnist32-ganforge-s0``) instead of training one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from pathlib import Path

CODE = "0xa5c3a5c3a5c3"  # 48 bits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/fingerprint")
    p.add_argument("--plain", default="", help="an existing plain cmnist32 run (else one is trained)")
    p.add_argument("--code", default=CODE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strength", type=float, default=0.0, help="--fingerprint-strength (0: the default)")
    p.add_argument("--steps", type=int, default=0, help="override the case's 2,000 steps (a quick check)")
    p.add_argument("--n", type=int, default=10_000, help="samples per FID/PR evaluation")
    p.add_argument("--n-bits", type=int, default=2000, help="samples the bit accuracy is measured on")
    args = p.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ganforge
    from ganforge import fingerprint
    from ganforge.cli import main as cli
    from ganforge.data import load_dataset
    from ganforge.imageio import open_image
    from quality_defaults import CASES, ganforge_run, measure, requested_digit

    case, out = CASES["cmnist32"], Path(args.out)
    steps = args.steps or case["steps"]
    from ganforge.config import GanConfig

    strength = args.strength or GanConfig.fingerprint_strength
    runs = {"fingerprinted": out / f"fingerprinted-{strength}", "plain": Path(args.plain) if args.plain else out / "plain"}
    seconds = {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        if name == "fingerprinted" or not args.plain:
            ganforge_run(case, args.seed, run, steps, {"fingerprint": args.code, "fingerprint_strength": strength} if name == "fingerprinted" else {})
        seconds[name] = round(time.perf_counter() - t0)
    fp = fingerprint.load(runs["fingerprinted"])
    rows = {"code": fp.code_text, "bits": fp.bits, "pair": json.loads((runs["fingerprinted"] / (fingerprint.FILE + ".json")).read_text())}
    labels = torch.arange(args.n_bits) % 10
    for name, run in runs.items():
        gen = ganforge.load_generator(run)
        x = gen.sample(args.n_bits, labels=labels, seed=777) * 2 - 1
        found = fp.detect(x)
        row = {"train_s": seconds[name], "step": gen.step,
               "samples_bit_accuracy": round(fp.bit_accuracy(x), 4),
               "samples_detected": round(sum(d["detected"] for d in found) / len(found), 4),
               **measure(run, case, args.n), "requested_digit": requested_digit(run)}
        files = out / f"{run.name}-files"
        cli(["sample", str(run), "--n", "200", "--seed", "5", "--out-dir", str(files), "--quiet"])
        pngs = sorted(files.glob("*.png"))
        images = torch.stack([torch.from_numpy(np.asarray(open_image(f, "L")).copy())[None] for f in pngs])
        found = fp.detect(images.float().div(127.5).sub(1))
        row["files"] = {"n": len(pngs), "bit_accuracy": round(sum(d["bit_accuracy"] for d in found) / len(found), 4),
                        "detected": round(sum(d["detected"] for d in found) / len(found), 4)}
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    real = load_dataset("mnist:test", resolution=32, progress=False).images[:args.n_bits].float().div(127.5).sub(1)
    found = fp.detect(real)
    rows["real_test_digits"] = {"n": len(found), "bit_accuracy": round(fp.bit_accuracy(real), 4),
                                "detected": round(sum(d["detected"] for d in found) / len(found), 4)}
    print(json.dumps(rows, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{strength}.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""DCGAN vs StyleGAN2 vs progressive growing on Fashion-MNIST 32x32 at the same CPU budget, by domain-classifier FID.

Each architecture trains in its own process, unconditional, for the same *process CPU time*
(``--cpu-seconds``; on a shared machine wall time measures the neighbours as much as the model):
a watchdog thread sends the process SIGTERM when its CPU time reaches the budget, the training
loop finishes the step and saves a checkpoint. Then FID of ``--n`` samples of the EMA generator
against the Fashion-MNIST test split (10k) in the features of ganforge's Fashion-MNIST classifier
(``--extractor fashion-mnist``), written with its protocol. Usage:

    GANFORGE_DATA_DIR=... nice -n 10 python benchmarks/quality_arch.py --cpu-seconds 480 --out runs/quality-arch

Recipes: DCGAN as ``ganforge train`` runs it by default (width 32); StyleGAN2 with the paper's
optimiser (Adam lr 0.0025, betas (0, 0.99)), R1 every 16 steps, style mixing 0.9 and path length
(weight 2, every 4 steps), width 32 (w_dim 256, 2 mapping layers at 32²; about 10x DCGAN's
multiply-adds per image at the same width) or 16; ``stylegan2-lite`` is the StyleGAN2-ADA
CIFAR-style variant without style mixing and path length. Progressive growing (``progan``) with
the paper's optimiser (Adam lr 0.001, betas (0, 0.99)), a fixed ``grow_steps`` (so every leg of a
resumed run follows one schedule; the growth to 32x32 ends at 6 x grow_steps steps), the
non-saturating loss or the paper's WGAN-GP, at width 16 (4x4: 128 channels .. 32x32: 16; about
4x DCGAN's CPU per step once grown) or 8.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

COMMON = dict(data="fashion-mnist", resolution=32, batch_size=64, width=32, steps=1_000_000, precision="auto",
              sample_every=500, ckpt_every=1_000_000, log_every=50, progress=False, tensorboard=False)
SG2 = dict(arch="stylegan2", lr_g=0.0025, lr_d=0.0025, beta1=0.0, beta2=0.99, r1_gamma=0.01, ema=0.995)
PG = dict(arch="progan", lr_g=0.001, lr_d=0.001, beta1=0.0, beta2=0.99)
RECIPES = {
    "dcgan": dict(arch="dcgan"),
    "stylegan2": SG2,
    "stylegan2-w16": dict(SG2, width=16),  # about a quarter of the multiply-adds of width 32
    "stylegan2-lite": dict(SG2, style_mixing=0.0, pl_weight=0.0),
    "progan-w16": dict(PG, width=16, grow_steps=100),
    "progan-w16-wgan": dict(PG, width=16, grow_steps=100, loss="wgan-gp"),
    "progan-w8": dict(PG, width=8, grow_steps=200),
}


def _watchdog(budget: float) -> None:
    while time.process_time() < budget:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # the loop finishes the step and checkpoints


def run_one(name: str, budget: float, out: Path, n: int, threads: int, resume: bool = False) -> dict:
    import torch

    import ganforge
    from ganforge.metrics.evaluation import evaluate, write_json

    torch.set_num_threads(threads)
    run = out / name
    cfg = ganforge.GanConfig(**{**COMMON, **RECIPES[name]})
    threading.Thread(target=_watchdog, args=(budget,), daemon=True).start()
    t0, c0 = time.perf_counter(), time.process_time()
    previous = json.loads((out / f"{name}.json").read_text())["benchmark"] if resume else {}
    summary = ganforge.train_gan(cfg, out=run, resume="auto" if resume else "never", handle_signals=True)
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    (fid,) = evaluate(str(run), "fashion-mnist:test", metrics="fid", extractor="fashion-mnist", n=n,
                      resolution=32, progress=False)
    row = {"arch": name, "recipe": {**COMMON, **RECIPES[name]}, "steps": summary["steps"],
           "images_seen": summary["steps"] * COMMON["batch_size"],
           "train_cpu_s": round(train_cpu + previous.get("train_cpu_s", 0.0), 1),  # all legs (--resume)
           "train_wall_s": round(train_wall + previous.get("train_wall_s", 0.0), 1),
           "images_per_s": round(summary["images_per_s"], 2),
           "precision": summary["precision"], "threads": threads, "fid": round(fid.value, 3), "n": n}
    write_json([fid], out / f"{name}.json", extra={"benchmark": row})
    write_json([fid], out / f"{name}-step{summary['steps']}.json", extra={"benchmark": row})
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-seconds", type=float, default=480.0, help="process CPU time per architecture")
    p.add_argument("--archs", default="dcgan,stylegan2,stylegan2-w16")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per run (runs go in parallel)")
    p.add_argument("--out", default="runs/quality-arch")
    p.add_argument("--resume", action="store_true",
                   help="continue the runs in --out for another --cpu-seconds each (a second point per arch)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(run_one(args.one, args.cpu_seconds, out, args.n, args.threads, args.resume)))
        return
    names = [a.strip() for a in args.archs.split(",") if a.strip()]
    procs = {name: subprocess.Popen([sys.executable, __file__, "--one", name, "--cpu-seconds", str(args.cpu_seconds),
                                     "--n", str(args.n), "--threads", str(args.threads), "--out", str(out)]
                                    + (["--resume"] if args.resume else []),
                                    stdout=subprocess.PIPE, text=True) for name in names}
    rows = []
    for name, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            print(f"{name}: failed ({proc.returncode})", file=sys.stderr)
            continue
        rows.append(json.loads(stdout.strip().splitlines()[-1]))
    print("| arch | steps | images | CPU s | wall s | img/s | FID (fashion-mnist features, n=%d) |" % args.n)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['steps']} | {r['images_seen']} | {r['train_cpu_s']} | {r['train_wall_s']} | "
              f"{r['images_per_s']} | {r['fid']} |")
    (out / f"summary-{int(time.time())}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

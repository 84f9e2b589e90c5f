"""Training throughput (images/s) of ganforge vs a plain reference loop, DCGAN 64x64, batch 64.

The reference is the pytorch/examples DCGAN loop (fp32, BCE with a sigmoid, one G forward per
iteration, no EMA/logging). ganforge runs its real training loop (GanTask + TrainingLoop: EMA,
NaN guard, logging) with the same architecture sizes, in fp32 and in bf16 autocast. Both read the
same in-memory random images. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_train_speed.py --iters 20 --rounds 3 --variants fp32-nchw,fp32,auto

Other architectures and sizes (ganforge only; the reference loop is DCGAN 64x64), e.g. StyleGAN2
at 256x256 on a GPU, AMP against fp32:

    python benchmarks/bench_train_speed.py --arch stylegan2 --resolution 256 --batch-size 32 --variants fp32,bf16,fp16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import sys
import time
from pathlib import Path

import torch
from torch import nn

NZ, NGF, NDF, NC, RES = 100, 64, 64, 3, 64
CLOCK = time.perf_counter  # --clock cpu: time.process_time, for a 1-thread run on a machine shared with other jobs


class RefG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class RefD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def reference(images: torch.Tensor, iters: int, batch: int, device: torch.device) -> float:
    torch.manual_seed(0)
    G, D = RefG().to(device), RefD().to(device)
    crit = nn.BCELoss()
    oD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    oG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    n = len(images)

    def one(i: int) -> None:
        idx = torch.arange(i * batch, (i + 1) * batch) % n
        real = images[idx].to(device).float().div(127.5).sub(1)
        D.zero_grad()
        out = D(real)
        err_real = crit(out, torch.full_like(out, 1.0))
        err_real.backward()
        fake = G(torch.randn(batch, NZ, 1, 1, device=device))
        out = D(fake.detach())
        err_fake = crit(out, torch.zeros_like(out))
        err_fake.backward()
        oD.step()
        G.zero_grad()
        out = D(fake)
        crit(out, torch.ones_like(out)).backward()
        oG.step()

    for i in range(3):
        one(i)
    _sync(device)
    t = CLOCK()
    for i in range(iters):
        one(i)
    _sync(device)
    return iters * batch / (CLOCK() - t)


def ganforge_rate(images: torch.Tensor, iters: int, batch: int, precision: str, channels_last: bool,
                  arch: str = "dcgan", width: int = 64, g_upsample: str = "transposed") -> float:
    from ganforge.config import GanConfig
    from ganforge.nets import GanNetSpec
    from ganforge.train.gan import GanTask
    from ganforge.train.loop import TensorBatches, TrainingLoop, make_accelerator

    acc = make_accelerator()
    res = images.shape[-1]
    cfg = GanConfig(arch=arch, resolution=res, width=width, batch_size=batch, precision=precision,
                    channels_last=channels_last, steps=2 * iters + 9, sample_every=0, ckpt_every=0, log_every=10**9,
                    progress=False, tensorboard=False, g_upsample=g_upsample if arch == "dcgan" else "auto")
    task = GanTask(cfg, GanNetSpec(res, NC, width=width, resize_conv=cfg.resize_conv), acc.device)
    batches = TensorBatches(images, torch.zeros(len(images), dtype=torch.long), batch, 0)
    with tempfile.TemporaryDirectory() as tmp:
        loop = TrainingLoop(task, batches, cfg.loop_config(), tmp, acc)
        loop.cfg.steps = 3
        loop.run()  # warm-up
        # Each run() ends with a checkpoint (weights, optimiser state, and the EMA generator's
        # BatchNorm statistics recomputed over 4,096 samples: seconds, once per checkpoint). The
        # per-step rate is the difference of a run of 3 + iters steps and one of 3: both end in one.
        spans = []
        for extra in (3, 3 + iters):
            loop.cfg.steps += extra
            _sync(acc.device)
            t = CLOCK()
            loop.run()
            _sync(acc.device)
            spans.append(CLOCK() - t)
        return iters * batch / (spans[1] - spans[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cpu_flags() -> str:
    """The CPU model and the flags that decide what 'auto' precision picks."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} [{' '.join(shown) or 'no avx2/avx512'}]"


def main() -> None:
    p = argparse.ArgumentParser(description="GAN training speed: ganforge vs the reference DCGAN loop")
    p.add_argument("--arch", default="dcgan", help="a registered architecture (the reference runs for dcgan at 64 only)")
    p.add_argument("--resolution", type=int, default=RES)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--g-upsample", default="transposed", choices=["transposed", "nearest"],
                   help="dcgan G: transposed (the reference's architecture, for the ratio) or nearest "
                        "(the unconditional default since 2026-12-07: what that default costs)")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median rate of each is reported")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time (use with OMP_NUM_THREADS=1 when other jobs share the machine)")
    p.add_argument("--variants", default="fp32-nchw,fp32,auto",
                   help="comma list of PRECISION[-nchw] (ganforge's default memory format is channels_last; "
                        "-nchw forces the old contiguous format); e.g. fp32,auto,bf16,fp16")
    args = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = torch.randint(0, 256, (args.batch_size * 8, NC, args.resolution, args.resolution), dtype=torch.uint8)
    with_reference = args.arch == "dcgan" and args.resolution == RES and args.width == NGF
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
               "cpu": cpu_flags(), "torch": torch.__version__, "arch": args.arch, "resolution": args.resolution,
               "width": args.width, "g_upsample": args.g_upsample, "batch": args.batch_size, "iters": args.iters,
               "rounds": args.rounds, "clock": args.clock}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rates: dict[str, list[float]] = {"reference_fp32": []} if with_reference else {}
    for v in variants:
        rates[f"ganforge_{v}"] = []
    for _ in range(args.rounds):  # interleaved, so drift in machine load hits every variant alike
        if with_reference:
            rates["reference_fp32"].append(reference(images, args.iters, args.batch_size, device))
        for v in variants:
            precision, _, fmt = v.partition("-")
            rates[f"ganforge_{v}"].append(ganforge_rate(images, args.iters, args.batch_size, precision, fmt != "nchw",
                                                        args.arch, args.width, args.g_upsample))
            print(f"  {v}: {rates[f'ganforge_{v}'][-1]:.2f} img/s", file=sys.stderr, flush=True)
    # ratios against the reference loop (dcgan 64) or else against ganforge's first variant
    base_key = "reference_fp32" if with_reference else f"ganforge_{variants[0]}"
    base = statistics.median(rates[base_key])
    results["ratio_base"] = base_key
    for key, values in rates.items():
        results[f"{key}_img_s"] = statistics.median(values)
        if key != base_key:
            results[f"{key}_ratio"] = statistics.median(values) / base
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()

"""StyleGAN2 training iterations: ganforge against the official StyleGAN2-ADA code, in one process.

    SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/bench_vs_official.py --resolutions 64,128
    # on a GPU, the paper256 shape: --device cuda --resolutions 256 --width 64 --batch-size 32 --threads 8

``SG2ADA`` is an extracted checkout of https://github.com/NVlabs/stylegan2-ada-pytorch; its networks
and ``StyleGAN2Loss`` are imported from there (nothing is copied into ganforge); without it the
script says so in one line and exits 0. Both sides get the same shape: the official
``channel_base = width x resolution``, ``channel_max = 8 x width`` (ganforge's ``channels_at``),
w_dim = z_dim = min(512, 8 x width), ganforge's mapping depth, a skip generator and a residual
discriminator, batch 8, R1 every 16 iterations (the same gamma), path length every 4 (weight 2,
half batch), style mixing 0.9, an EMA of G, fp32, no augmentation. ganforge runs its real
TrainingLoop (GanTask); the official side runs one iteration of its training loop's phases
(Gmain, Greg every 4, Dmain, Dreg every 16: zero_grad, accumulate_gradients, optimiser step, with
its lazy-regularisation Adam settings) and its EMA. The two alternate iteration by iteration (the
official iteration runs inside ganforge's batch fetch and is timed apart), so a shared machine's load
hits both alike; the iteration counters line up, so both regularise at the same iterations. Each
round is 16 iterations (one full R1/PL cycle); medians over rounds. The clock is the process CPU
time with 1 thread by default (robust to other jobs; --clock wall for elapsed time).

On the CPU the official code uses its reference (non-CUDA) ops: upfirdn2d and bias_act in plain
PyTorch, conv2d_gradfix disabled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_speed import cpu_flags  # noqa: E402

CLOCK = time.process_time
DEVICE = torch.device("cpu")
PRECISION = "fp32"


def _mark() -> float:
    if DEVICE.type == "cuda":  # the span must hold the queued GPU work
        torch.cuda.synchronize()
    return CLOCK()


def import_official(root: Path):
    sys.path.insert(0, str(root))
    try:
        import requests  # noqa: F401  (dnnlib.util imports it; only its URL helpers use it)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    import dnnlib  # noqa: F401
    from training import loss, networks

    return networks, loss


class Official:
    """One iteration of the official training loop's phases, on the CPU."""

    def __init__(self, root: Path, resolution: int, width: int, batch: int, r1_gamma: float, mapping_layers: int) -> None:
        import copy

        networks, loss = import_official(root)
        w_dim = min(512, 8 * width)
        torch.manual_seed(0)
        common = dict(c_dim=0, img_resolution=resolution, img_channels=3)
        dev = DEVICE
        self.G = networks.Generator(z_dim=w_dim, w_dim=w_dim, mapping_kwargs=dict(num_layers=mapping_layers),
                                    synthesis_kwargs=dict(channel_base=width * resolution, channel_max=8 * width,
                                                          num_fp16_res=0, conv_clamp=None, architecture="skip"),
                                    **common).train().requires_grad_(False).to(dev)
        self.D = networks.Discriminator(channel_base=width * resolution, channel_max=8 * width, architecture="resnet",
                                        num_fp16_res=0, conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=4),
                                        **common).train().requires_grad_(False).to(dev)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = loss.StyleGAN2Loss(dev, self.G.mapping, self.G.synthesis, self.D,
                                       style_mixing_prob=0.9, r1_gamma=r1_gamma, pl_weight=2)
        self.phases = []
        for name, module, interval in [("G", self.G, 4), ("D", self.D, 16)]:
            ratio = interval / (interval + 1)  # the official lazy-regularisation Adam settings
            opt = torch.optim.Adam(module.parameters(), lr=0.0025 * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
            self.phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
        self.batch, self.z_dim, self.resolution, self.i = batch, w_dim, resolution, 0

    def step(self) -> None:
        i, self.i = self.i, self.i + 1
        real = torch.rand(self.batch, 3, self.resolution, self.resolution, device=DEVICE) * 2 - 1
        c = torch.zeros(self.batch, 0, device=DEVICE)
        for name, module, opt, interval in self.phases:
            if i % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn(self.batch, self.z_dim, device=DEVICE)
            self.loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():  # the official EMA update (ema_kimg 10 at batch 8 -> beta ~ 0.9994)
            beta = 0.5 ** (self.batch / 10_000)
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)


class Interleaved:
    """ganforge's batch source, which also runs one official iteration at each fetch and records
    the clock around it."""

    def __init__(self, inner, other: Official) -> None:
        self.inner, self.other, self.marks = inner, other, []
        self.count_key = getattr(inner, "count_key", None)

    def get(self, *args, **kwargs):
        t0 = _mark()
        self.other.step()
        self.marks.append((t0, _mark()))
        return self.inner.get(*args, **kwargs)


def run(root: Path, resolution: int, width: int, batch: int, rounds: int) -> dict:
    from ganforge.config import GanConfig
    from ganforge.nets import GanNetSpec
    from ganforge.nets.stylegan2 import mapping_layers
    from ganforge.train.gan import GanTask
    from ganforge.train.loop import TensorBatches, TrainingLoop, make_accelerator

    acc = make_accelerator(cpu=DEVICE.type == "cpu")
    w_dim = min(512, 8 * width)
    cfg = GanConfig(arch="stylegan2", resolution=resolution, width=width, batch_size=batch, z_dim=w_dim,
                    style_mixing=0.9, pl_weight=2.0, pl_every=4, steps=0, sample_every=0, ckpt_every=0,
                    progress=False, tensorboard=False, precision=PRECISION).resolved()
    spec = GanNetSpec(resolution, 3, width=width, z_dim=w_dim)
    task = GanTask(cfg, spec, acc.device)
    if cfg.r1_interval != 16:
        raise SystemExit(f"ganforge's R1 interval is {cfg.r1_interval}, this benchmark assumes 16")
    official = Official(root, resolution, width, batch, cfg.r1_gamma, mapping_layers(spec))
    images = torch.randint(0, 256, (batch * 8, 3, resolution, resolution), dtype=torch.uint8)
    batches = Interleaved(TensorBatches(images, torch.zeros(len(images), dtype=torch.long), batch, 0), official)
    per_round: dict[str, list[float]] = {"official_s": [], "ganforge_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        loop_cfg = cfg.loop_config()
        loop_cfg.steps = 17  # round 0 (warm-up): 17 fetches, 16 whole iterations of each
        loop = TrainingLoop(task, batches, loop_cfg, tmp, acc)
        for r in range(rounds + 1):  # round 0: warm-up
            batches.marks = []
            loop.cfg.steps += 0 if r == 0 else 16
            loop.run()
            marks = batches.marks
            if r == 0:  # 17 fetches: 16 whole iterations of each; the 17th official one belongs to round 1
                continue
            official_s = sum(t1 - t0 for t0, t1 in marks)
            ours = sum(nxt[0] - cur[1] for cur, nxt in zip(marks[:-1], marks[1:]))
            ours += ours / (len(marks) - 1)  # the last ganforge iteration's time, estimated as the mean
            per_round["official_s"].append(official_s / 16)
            per_round["ganforge_s"].append(ours / 16)
            print(f"  {resolution}²: official {official_s / 16:.3f} s/iter, ganforge {ours / 16:.3f} s/iter",
                  file=sys.stderr, flush=True)
    off, ours = statistics.median(per_round["official_s"]), statistics.median(per_round["ganforge_s"])
    return {"resolution": resolution, "width": width, "batch": batch, "r1_gamma": cfg.r1_gamma,
            "official_s_per_iter": round(off, 4), "ganforge_s_per_iter": round(ours, 4),
            "speedup": round(off / ours, 3), "rounds": {k: [round(x, 4) for x in v] for k, v in per_round.items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolutions", default="64,128")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="rounds of 16 iterations of each; medians reported")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="cpu: process CPU time (CPU runs only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda: wall clock, synchronised at each mark)")
    p.add_argument("--precision", default="fp32", help="ganforge's precision (the official side runs fp32, "
                                                        "num_fp16_res 0)")
    args = p.parse_args()
    root = os.environ.get("SG2ADA")
    if not root or not (Path(root) / "training" / "loss.py").exists():
        print("skipped: set SG2ADA to an extracted NVlabs/stylegan2-ada-pytorch checkout")
        return 0
    global CLOCK, DEVICE, PRECISION
    DEVICE, PRECISION = torch.device(args.device), args.precision
    CLOCK = time.process_time if args.clock == "cpu" and DEVICE.type == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    import ganforge

    results = {"ganforge_src": str(Path(ganforge.__file__).parent), "cpu": cpu_flags(), "device": str(DEVICE),
               "precision": PRECISION,
               "gpu": torch.cuda.get_device_name() if DEVICE.type == "cuda" else None, "torch": torch.__version__,
               "threads": args.threads, "clock": args.clock, "runs": []}
    for res in (int(r) for r in args.resolutions.split(",")):
        results["runs"].append(run(Path(root).resolve(), res, args.width, args.batch_size, args.rounds))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

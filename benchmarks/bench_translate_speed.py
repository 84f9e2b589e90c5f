"""Training speed at 256² (batch 1, ngf = ndf = 64: the papers' configuration) of ganforge's
``train_translator`` (the whole loop: batch source, NaN guard, logging, LR schedule) vs a plain
PyTorch reference loop of the same networks (``ganforge.nets.translators``: U-Net-256 + 70×70
PatchGAN for pix2pix; two ResNet-9 generators + two PatchGANs for CycleGAN), the same losses
(pix2pix: BCE-with-logits GAN + 100·L1; CycleGAN: LSGAN + 10·cycle + 5·identity, image pool of 50),
Adam(2e-4, 0.5, 0.999), random 256² crops of 286² images and flips, NCHW fp32 (the upstream repo's
loop, stripped of its visualiser and data loader workers).

Variants run interleaved (ref, ganforge fp32, ganforge auto, ref, ...), so drift in the load of a
shared machine hits every variant alike. Each run is fresh; its first --warmup steps are excluded
and the next --steps steps are timed one by one (ganforge: the per-step rate its loop logs with
log_every=1; the reference: a clock around each step). Reported: the median step time per run,
then the median over rounds, as iterations/s; ratio = ganforge / reference.

--clock cpu (the default) reads this process's CPU time instead of the wall clock: with
--threads 1 that is the work done, independent of other jobs on the machine. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_translate_speed.py --models pix2pix,cyclegan \\
        --rounds 2 --warmup 2 --steps 4 --threads 1 --json benchmarks/results/translate_speed.json
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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LOAD, CROP = 286, 256
CLOCK = time.process_time


from bench_train_speed import cpu_flags  # noqa: E402  (one copy; benchmarks/ is on sys.path when run as a script)


def make_data(root: Path, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """n smooth random 286² RGB pairs as A/ and B/ folders (for ganforge) and as uint8 tensors (for
    the reference: the same pixels)."""
    rng = np.random.default_rng(0)
    a, b = [], []
    for i in range(n):
        for side, store in (("A", a), ("B", b)):
            grid = (rng.random((9, 9, 3)) * 255).astype(np.uint8)
            img = Image.fromarray(grid).resize((LOAD, LOAD), Image.Resampling.BICUBIC)
            (root / side).mkdir(parents=True, exist_ok=True)
            img.save(root / side / f"{i:03d}.png")
            store.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    return torch.stack(a), torch.stack(b)


# --- the plain reference loops ------------------------------------------------------------------

def _crop_flip(x: torch.Tensor, g: torch.Generator, i: int) -> torch.Tensor:
    y0, x0 = (int(v) for v in torch.randint(0, LOAD - CROP + 1, (2,), generator=g))
    out = x[i % len(x): i % len(x) + 1, :, y0:y0 + CROP, x0:x0 + CROP]
    if torch.rand((), generator=g) < 0.5:
        out = out.flip(-1)
    return out.float().div(127.5).sub(1)


def unet_downs() -> int:
    """8 at 256² (U-Net-256): down to 1x1, as ganforge's auto rule."""
    return max(5, min(8, CROP.bit_length() - 1))


def _adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def reference_pix2pix(a: torch.Tensor, b: torch.Tensor, warmup: int, steps: int, precision: str) -> list[float]:
    from ganforge.nets.translators import PatchDiscriminator, UnetGenerator, init_weights

    torch.manual_seed(0)
    G = init_weights(UnetGenerator(3, 3, num_downs=unet_downs(), ngf=64, norm="batch", use_dropout=True))
    D = init_weights(PatchDiscriminator(6, 64, 3, norm="batch"))
    oG, oD = _adam(G.parameters()), _adam(D.parameters())
    bce = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        t = CLOCK()
        y0 = _crop_flip(torch.cat([a, b], 1), g, i)
        real_a, real_b = y0[:, :3], y0[:, 3:]
        with _autocast(precision):
            fake_b = G(real_a)
            pred_fake = D(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = D(torch.cat([real_a, real_b], 1))
            loss_d = 0.5 * (bce(pred_fake.float(), torch.zeros_like(pred_fake, dtype=torch.float32))
                            + bce(pred_real.float(), torch.ones_like(pred_real, dtype=torch.float32)))
        oD.zero_grad()
        loss_d.backward()
        oD.step()
        D.requires_grad_(False)
        with _autocast(precision):
            pred = D(torch.cat([real_a, fake_b], 1))
            loss_g = bce(pred.float(), torch.ones_like(pred, dtype=torch.float32)) \
                + 100.0 * F.l1_loss(fake_b.float(), real_b)
        oG.zero_grad()
        loss_g.backward()
        oG.step()
        D.requires_grad_(True)
        float(loss_g.detach())  # what a logging loop reads back
        times.append(CLOCK() - t)
    return times[warmup:]


class _Pool:
    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = x.detach()
        if len(self.images) < self.size:
            self.images.append(x.clone())
            return x
        if torch.rand((), generator=g) > 0.5:
            i = int(torch.randint(0, self.size, (), generator=g))
            old, self.images[i] = self.images[i], x.clone()
            return old
        return x


def reference_cyclegan(a: torch.Tensor, b: torch.Tensor, warmup: int, steps: int, precision: str) -> list[float]:
    from ganforge.nets.translators import PatchDiscriminator, ResnetGenerator, init_weights

    torch.manual_seed(0)
    G_A, G_B = (init_weights(ResnetGenerator(3, 3, ngf=64, n_blocks=9, norm="instance")) for _ in range(2))
    D_A, D_B = (init_weights(PatchDiscriminator(3, 64, 3, norm="instance")) for _ in range(2))
    oG = _adam(list(G_A.parameters()) + list(G_B.parameters()))
    oD = _adam(list(D_A.parameters()) + list(D_B.parameters()))
    mse = torch.nn.MSELoss()
    pool_a, pool_b = _Pool(), _Pool()
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        t = CLOCK()
        real_a, real_b = _crop_flip(a, g, i), _crop_flip(b, g, i + 3)
        with _autocast(precision):
            fake_b, fake_a = G_A(real_a), G_B(real_b)
            rec_a, rec_b = G_B(fake_b), G_A(fake_a)
        D_A.requires_grad_(False), D_B.requires_grad_(False)
        with _autocast(precision):
            idt_a, idt_b = G_A(real_b), G_B(real_a)
            pa, pb = D_A(fake_b).float(), D_B(fake_a).float()
            loss_g = (mse(pa, torch.ones_like(pa)) + mse(pb, torch.ones_like(pb))
                      + 10.0 * (F.l1_loss(rec_a.float(), real_a) + F.l1_loss(rec_b.float(), real_b))
                      + 5.0 * (F.l1_loss(idt_a.float(), real_b) + F.l1_loss(idt_b.float(), real_a)))
        oG.zero_grad()
        loss_g.backward()
        oG.step()
        D_A.requires_grad_(True), D_B.requires_grad_(True)
        old_b, old_a = pool_b.query(fake_b, g), pool_a.query(fake_a, g)
        with _autocast(precision):
            loss_d = 0
            for D, real, old in ((D_A, real_b, old_b), (D_B, real_a, old_a)):
                pr, pf = D(real).float(), D(old).float()
                loss_d = loss_d + 0.5 * (mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf)))
        oD.zero_grad()
        loss_d.backward()
        oD.step()
        float(loss_g.detach())
        times.append(CLOCK() - t)
    return times[warmup:]


# --- ganforge ------------------------------------------------------------------------------------

def ganforge_times(model: str, data: Path, warmup: int, steps: int, precision: str) -> tuple[list[float], str]:
    """Per-step seconds of ``train_translator`` (the loop's own logged rate at log_every=1, batch 1:
    img/s = steps/s), with the loop's clock switched to CLOCK."""
    import ganforge.train.loop as loop_mod
    from ganforge.translate import TranslateConfig, train_translator

    shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    shim.perf_counter = CLOCK
    saved = loop_mod.time
    loop_mod.time = shim
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TranslateConfig(data=str(data), model=model, load_size=LOAD, crop_size=str(CROP), ngf=64, ndf=64,
                                  batch_size=1, steps=warmup + steps, unet_downs=unet_downs(), resnet_blocks=9, precision=precision, log_every=1,
                                  sample_every=0, ckpt_every=0, keep_ckpts=1, progress=False, tensorboard=False)
            summary = train_translator(cfg, out=Path(tmp) / "run")
            records = [json.loads(line) for line in (Path(tmp) / "run" / "log.jsonl").read_text().splitlines()]
    finally:
        loop_mod.time = saved
    rates = [r["img_per_s"] for r in records if r.get("step", 0) > warmup and "img_per_s" in r]
    return [1.0 / r for r in rates], summary["precision"]


def main() -> None:
    p = argparse.ArgumentParser(description="pix2pix / CycleGAN 256² training speed: ganforge vs a plain loop")
    p.add_argument("--models", default="pix2pix,cyclegan")
    p.add_argument("--variants", default="ref-fp32,ganforge-fp32,ganforge-auto",
                   help="comma list of ref-fp32, ref-bf16, ganforge-fp32, ganforge-auto, ganforge-bf16")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument("--crop", type=int, default=256, help="crop size (the paper: 256; smaller only for smoke tests)")
    p.add_argument("--json")
    args = p.parse_args()
    global CLOCK, CROP, LOAD
    CROP, LOAD = args.crop, args.crop * 286 // 256
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    from ganforge.device import resolve_precision

    t_all = time.perf_counter()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    result = {"cpu": cpu_flags(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "clock": "process CPU time" if args.clock == "cpu" else "wall",
              "auto_resolves_to": resolve_precision("auto", torch.device("cpu")),
              "size": f"{CROP}x{CROP} crops of {LOAD}x{LOAD}", "batch": 1, "ngf": 64, "ndf": 64,
              "rounds": args.rounds, "warmup_steps": args.warmup, "timed_steps_per_run": args.steps, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        a, b = make_data(data)
        for model in models:
            per: dict[str, list[float]] = {v: [] for v in variants}
            raw: dict[str, list[list[float]]] = {v: [] for v in variants}
            for r in range(args.rounds):
                for v in variants:
                    kind, prec = v.split("-", 1)
                    if kind == "ref":
                        fn = reference_pix2pix if model == "pix2pix" else reference_cyclegan
                        times = fn(a, b, args.warmup, args.steps, prec)
                    else:
                        times, resolved = ganforge_times(model, data, args.warmup, args.steps, prec)
                        result.setdefault("ganforge_resolved", {})[v] = resolved
                    raw[v].append([round(t, 4) for t in times])
                    per[v].append(statistics.median(times))
                    print(f"{model} round {r + 1} {v}: {1 / per[v][-1]:.3f} it/s "
                          f"(median of {len(times)} steps)", flush=True)
            out = {"steps_per_s": {v: 1 / statistics.median(ts) for v, ts in per.items()}, "step_seconds": raw}
            ref = out["steps_per_s"].get("ref-fp32")
            if ref:
                out["ratio_vs_ref_fp32"] = {v: s / ref for v, s in out["steps_per_s"].items() if v != "ref-fp32"}
            result["models"][model] = out
            print(model, json.dumps(out["steps_per_s"]), json.dumps(out.get("ratio_vs_ref_fp32", {})), flush=True)
    result["wall_s"] = round(time.perf_counter() - t_all, 1)
    result["load_avg_at_end"] = os.getloadavg()
    result["command"] = " ".join(["python", "benchmarks/bench_translate_speed.py", *sys.argv[1:]])
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

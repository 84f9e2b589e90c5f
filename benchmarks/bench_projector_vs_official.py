"""Projection speed: ``ganforge.project`` against the official StyleGAN2-ADA projector, same network.

    SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/bench_projector_vs_official.py --steps 12 --rounds 2

``SG2ADA`` is an extracted checkout of https://github.com/NVlabs/stylegan2-ada-pytorch; its
``projector.project`` and networks are imported from there (nothing is copied into ganforge); without
it the script says so in one line and exits 0.

The network: the official ``Generator`` shaped like the FFHQ 256² "paper256" config (z = w = 512,
mapping 8, channel base 16384, max 512, conv clamp 256), random weights, written as an official
snapshot pickle that ganforge reads with ``ganforge.load_generator`` (nothing from the file runs).
Both sides run fp32 on the CPU (the official blocks' fp16 switched off, as ganforge runs the
published files in fp32 unless asked), project one 256² image the generator drew, in W, with the
official recipe (10,000-sample w statistics, Adam lr 0.1 with its ramps, noise regularisation 1e5).

The official projector's loss network is NVIDIA's TorchScript LPIPS VGG16 (``vgg16.pt``, downloaded
at run time). It cannot be downloaded here, so the script writes a **stand-in with the same
architecture and the same call signature** (torchvision's VGG16 layers up to relu5_3, random weights,
LPIPS's channel-unit normalisation and per-layer weighting at relu1_2/2_2/3_3/4_3/5_3) into a private
dnnlib cache under the URL's cache name; the time per step is that of the real file up to the learned
weights' values. ganforge's projector uses its own loss (``--loss``, default ``auto``: the LPIPS-style
VGG19 distance when the VGG19 weights are found, else pixel MSE + (1 - SSIM); the JSON says which).

Timing: each side's per-step time is the median gap between successive calls of its loss network
(official: the VGG16 stand-in, called once per step; ganforge: its per-step callback), so the
10,000-sample statistics and set-up are left out on both sides. The sides alternate, ``--rounds``
times; medians over rounds. Wall clock (``--threads`` threads).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
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

VGG16_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"
PAPER256 = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3, mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256,
                                      architecture="skip"))


class _Stage(torch.nn.Module):
    """VGG16 layers up to one LPIPS tap, and LPIPS's per-channel weight there."""

    def __init__(self, layers: torch.nn.Module, channels: int, g: torch.Generator) -> None:
        super().__init__()
        self.layers = layers
        self.weight = torch.nn.Parameter(torch.rand(1, channels, 1, 1, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LpipsVgg16(torch.nn.Module):
    """The call signature and computation of NVIDIA's ``vgg16.pt`` with random weights: images in
    [0, 255] -> (with ``return_lpips``) one vector per image whose squared distance is LPIPS."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        feats = vgg16(weights=None).features[:30]  # conv1_1 .. relu5_3
        g = torch.Generator().manual_seed(0)
        self.stages = torch.nn.ModuleList([_Stage(feats[a:b], c, g) for a, b, c in
                                           ((0, 4, 64), (4, 9, 128), (9, 16, 256), (16, 23, 512), (23, 30, 512))])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        if resize_images:
            img = torch.nn.functional.interpolate(img, size=(224, 224), mode="area")
        x = (img - self.mean) / self.std
        out = []
        for stage in self.stages:
            x = stage(x)
            f = x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            if return_lpips:
                f = f * stage.weight.sqrt() / (f.shape[2] * f.shape[3]) ** 0.5
            out.append(f.flatten(1))
        return torch.cat(out, dim=1)


class Recorder:
    """Wraps the official projector's loss network: the time of every call."""

    def __init__(self, net) -> None:
        self.net, self.marks = net, []

    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def __call__(self, *args, **kwargs):
        self.marks.append(time.perf_counter())
        return self.net(*args, **kwargs)


def median_gap(marks: list[float]) -> float:
    return statistics.median(b - a for a, b in zip(marks[:-1], marks[1:]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12, help="projection steps per run (the first gaps include warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--loss", default="auto", help="ganforge's projection loss: auto, lpips or pixel")
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args()
    root = os.environ.get("SG2ADA")
    if not root or not (Path(root) / "projector.py").exists():
        print("SG2ADA (a stylegan2-ada-pytorch checkout) not given: official projector comparison skipped")
        return 0
    torch.set_num_threads(args.threads)
    for name in ("click", "imageio"):  # projector.py imports them for its CLI only
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    try:
        import requests  # noqa: F401  (dnnlib's URL check; nothing is downloaded)
    except ImportError:
        import urllib.parse

        sys.modules["requests"] = types.ModuleType("requests")
        sys.modules["requests"].compat = types.SimpleNamespace(urlparse=urllib.parse.urlparse,
                                                               urljoin=urllib.parse.urljoin)
    from check_official_stylegan2 import import_official, write_snapshot

    networks, augment = import_official(Path(root))
    import projector

    import ganforge
    from ganforge.editing import project

    tmp = Path(tempfile.mkdtemp(prefix="projbench-"))
    official_G, _ = write_snapshot(tmp / "paper256.pkl", networks, augment, PAPER256, seed=0)
    for m in official_G.modules():  # fp32 throughout, as ganforge runs the file
        if hasattr(m, "use_fp16"):
            m.use_fp16 = False
    gen = ganforge.load_generator(tmp / "paper256.pkl")  # fp32 on the CPU
    with torch.no_grad():
        target01 = gen.generate(gen.latents(1, 3))[0]  # [0, 1], 3x256x256
    stand_in = torch.jit.script(LpipsVgg16().eval().requires_grad_(False))
    cache = tmp / "dnnlib" / "downloads"
    cache.mkdir(parents=True)
    torch.jit.save(stand_in, str(cache / f"{hashlib.md5(VGG16_URL.encode()).hexdigest()}_vgg16.pt"))
    os.environ["DNNLIB_CACHE_DIR"] = str(tmp / "dnnlib")

    def official() -> float:
        real_load, rec = torch.jit.load, None

        def load(f, *a, **k):
            nonlocal rec
            rec = Recorder(real_load(f, *a, **k))
            return rec
        torch.jit.load = load
        try:
            projector.project(copy.deepcopy(official_G), (target01 * 255).clamp(0, 255), num_steps=args.steps,
                              device=torch.device("cpu"))
        finally:
            torch.jit.load = real_load
        return median_gap(rec.marks[1:])  # the first call is the target's features

    used = {}

    def ours() -> float:
        marks = []
        r = project(gen, target01, steps=args.steps, space="w", loss=args.loss, frames=0,
                    callback=lambda step, value: marks.append(time.perf_counter()))
        used["loss"] = r.loss
        return median_gap(marks)

    times: dict[str, list[float]] = {"official": [], "ganforge": []}
    for i in range(args.rounds):
        times["official"].append(official())
        times["ganforge"].append(ours())
        print(f"  round {i}: official {times['official'][-1]:.3f} s/step, ganforge {times['ganforge'][-1]:.3f} s/step",
              file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"cpu": cpu_flags(), "torch": torch.__version__, "threads": args.threads, "steps": args.steps,
              "rounds": args.rounds, "network": "official paper256 shape, random weights, fp32",
              "official_loss": "LPIPS VGG16 (stand-in: same architecture, random weights)",
              "ganforge_loss": used.get("loss"),
              "official_s_per_step": round(med["official"], 3), "ganforge_s_per_step": round(med["ganforge"], 3),
              "speed_ratio_official_over_ganforge": round(med["official"] / med["ganforge"], 3),
              "rounds_s_per_step": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

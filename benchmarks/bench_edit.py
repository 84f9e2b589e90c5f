"""Projection and editing figures for docs/benchmarks.md ("Editing: projection, directions").

    GANFORGE_OFFLINE=1 GANFORGE_DATA_DIR=../shared/assets/datasets GANFORGE_WEIGHTS_DIR=../shared/assets/weights \\
    nice -n 10 python benchmarks/bench_edit.py --run /tmp/edit-bench/fmnist-run --out benchmarks/results/bench_edit.json

Parts (``--parts``, comma list; all by default):

- ``random``: images drawn by a random-weight ganforge StyleGAN2 (32², 3 channels), projected in W and
  W+ (``--steps``); PSNR and the LPIPS-style distance of each reconstruction.
- ``trained``: the same on images drawn by a conditional StyleGAN2 trained on Fashion-MNIST (``--run``;
  trained here first with ``--train-steps`` if the folder does not exist).
- ``real``: held-out *real* test items of ``--data`` projected into that model: PSNR/distance
  before and after pivotal tuning (``--pti-steps``).
- ``sefa``: SeFa directions 0..2 of the trained model on 8 seeds: is the LPIPS-style distance to the
  unedited image monotonic in |strength| (0.5, 1, 2, 3, both signs)?
- ``boundary``: class boundaries of the trained model (target class against one source class,
  ``--pairs``): the rate at which ganforge's domain classifier for ``--data`` calls the edited images
  the target class, for strengths 0..3 (chance at strength 0 is the source class's own rate).
- ``speed``: seconds per projection step at 256² (random-weight network shaped like the official
  FFHQ "paper256" config), CPU fp32, for ``--speed-steps`` steps; 500 steps = 500 × that.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import ganforge
from ganforge.editing import boundary_from_classes, project, sefa
from ganforge.editing.apply import apply_direction, render
from ganforge.editing.loss import Distance
from ganforge.generator import Generator
from ganforge.nets import GanNetSpec, build_gan


def random_gen(res: int = 32, channels: int = 3, width: int = 16, seed: int = 0) -> Generator:
    spec = GanNetSpec(resolution=res, channels=channels, z_dim=64, width=width)
    torch.manual_seed(seed)
    G, _ = build_gan("stylegan2", spec)
    with torch.no_grad():  # noise strengths as a trained network has them, not zero
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    G.eval().requires_grad_(False)
    return Generator(G, G, spec, [], 0, Path("random"), arch="stylegan2")


def train(run: Path, steps: int, data: str = "fashion-mnist") -> None:
    ganforge.train_gan(ganforge.GanConfig(data=data, resolution=32, arch="stylegan2", conditional=True,
                                          width=16, z_dim=64, batch_size=32, steps=steps, pl_weight=0.0,
                                          sample_every=500, ckpt_every=500, progress=False, tensorboard=False),
                       out=run)


def generated(gen: Generator, args, dist: Distance, n: int = 2) -> dict:
    out = {}
    for space in ("w", "w+"):
        rows = []
        for seed in range(n):
            z = gen.latents(1, seed=100 + seed)
            y = gen.labels(1, None, seed)
            target = gen.generate(z, y)[0]
            r = project(gen, target, steps=args.steps, space=space, loss=args.loss, frames=0, label=None,
                        noise_weight=args.noise_reg)
            rows.append({"psnr_db": round(r.psnr, 2), "lpips_style": round(float(dist(r.image.clamp(0, 1),
                                                                                      target[None])), 4),
                         "seconds_per_step": round(r.seconds / r.steps, 4)})
        out[space] = rows
    return out


def real(gen: Generator, args, dist: Distance, n: int = 3, figure: Path | None = None) -> list[dict]:
    from ganforge.data import load_dataset

    data = load_dataset(f"{args.data}:test", resolution=gen.resolution, channels=gen.channels, max_images=n)
    rows, tiles = [], []
    for i in range(n):
        image = data.images[i].float() / 255.0
        r = project(gen, image, steps=args.steps, space="w+", loss=args.loss, pti_steps=args.pti_steps, frames=0)
        tiles += [image, r.image[0].clamp(0, 1)] + ([r.tuned_image[0].clamp(0, 1)] if r.tuned_image is not None else [])
        rows.append({"label": int(data.labels[i]), "psnr_db": round(r.psnr, 2),
                     "lpips_style": round(float(dist(r.image.clamp(0, 1), image[None])), 4),
                     "pti": r.pti})
    if figure is not None:  # one row per item: target, W+ reconstruction, after PTI (4x nearest)
        from ganforge.sample import save_grid

        big = torch.nn.functional.interpolate(torch.stack(tiles), scale_factor=4, mode="nearest")
        save_grid(big, figure, nrow=len(tiles) // n)
    return rows


def sefa_monotonic(gen: Generator, dist: Distance, seeds: int = 8) -> dict:
    dirs = sefa(gen, k=3)
    strengths = (0.5, 1, 2, 3)
    result = {}
    for i, name in enumerate(dirs.names):
        ok, curves = 0, []
        for seed in range(seeds):
            base = gen.mapping(gen.latents(1, seed), gen.labels(1, None, seed)).cpu()
            img0 = render(gen, base)
            for sign in (1, -1):
                d = [float(dist(render(gen, apply_direction(base, dirs.vectors[i], float(dirs.scales[i]),
                                                            sign * s, dirs.layers[i])), img0)) for s in strengths]
                ok += all(a < b for a, b in zip(d, d[1:]))
                curves.append([round(x, 4) for x in d])
        result[name] = {"monotonic": f"{ok}/{2 * seeds}", "example_curve": curves[0]}
    return result


def boundary_rates(gen: Generator, pairs=((0, 1), (7, 5), (9, 7), (1, 3)), n: int = 200,
                   data: str = "fashion-mnist") -> dict:
    from ganforge.editing.directions import sample_w
    from ganforge.metrics.classifier import load_classifier

    clf = load_classifier(data, progress=False)
    out = {}
    for source, target in pairs:
        dirs = boundary_from_classes(gen, target=target, source=source, n=1000)
        v, scale, layers = dirs.vectors[0], float(dirs.scales[0]), dirs.layers[0]
        ws = sample_w(gen, n, seed=7, label=source)[:, None].expand(-1, gen.G_ema.num_ws, -1)
        rates = []
        for s in (0, 1, 2, 3):
            with torch.no_grad():
                pred = clf(render(gen, apply_direction(ws, v, scale, s, layers))).argmax(1)
            rates.append(round(float((pred == target).float().mean()), 3))
        out[f"{source}->{target}"] = {"target_rate_by_strength_0_1_2_3": rates,
                                      "source_rate_at_0": None}
        with torch.no_grad():
            out[f"{source}->{target}"]["source_rate_at_0"] = round(float(
                (clf(render(gen, ws)).argmax(1) == source).float().mean()), 3)
    return out


def speed(args) -> dict:
    from ganforge.published.network import OfficialGenerator

    torch.manual_seed(0)
    G = OfficialGenerator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                          mapping_kwargs={"num_layers": 8},
                          synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256))
    G.eval().requires_grad_(False)
    spec = GanNetSpec(resolution=256, channels=3, z_dim=512, width=512)
    gen = Generator(G, G, spec, [], 0, Path("paper256-random"), arch="stylegan2-official")
    target = gen.generate(gen.latents(1, 3))[0]
    out = {}
    for loss in ("auto", "pixel"):
        t = time.perf_counter()
        r = project(gen, target, steps=args.speed_steps, space="w", loss=loss, frames=0)
        total = time.perf_counter() - t
        out[r.loss] = {"steps": args.speed_steps, "seconds_total": round(total, 1),
                       "seconds_per_step": round(r.seconds / args.speed_steps, 3),
                       "estimated_500_steps_s": round(500 * r.seconds / args.speed_steps, 0)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="/tmp/edit-bench/fmnist-run")
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--data", default="fashion-mnist", help="the trained model's dataset (training, classifier)")
    p.add_argument("--pairs", default="0-1,7-5,9-7,1-3", help="boundary source-target class pairs")
    p.add_argument("--checkpoint", default="latest")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--pti-steps", type=int, default=200)
    p.add_argument("--noise-reg", type=float, default=1e5,
                   help="noise-map regularisation weight of the generated-image projections (1e5: the official)")
    p.add_argument("--loss", default="pixel", help="projection loss for the PSNR figures (auto: LPIPS-style VGG19)")
    p.add_argument("--speed-steps", type=int, default=20)
    p.add_argument("--parts", default="random,trained,real,sefa,boundary,speed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/bench_edit.json")
    p.add_argument("--figures", type=Path, default=None, help="folder for the docs images (docs/images)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    dist = Distance("auto")
    results: dict = {"command": " ".join(["python", *os.sys.argv]), "distance": dist.name,
                     "threads": args.threads, "cpu": _cpu()}
    out = Path(args.out)

    def dump() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    if "random" in parts:
        results["random_weights_32"] = generated(random_gen(), args, dist)
        dump()
    if parts & {"trained", "real", "sefa", "boundary"}:
        run = Path(args.run)
        if not run.exists():
            train(run, args.train_steps, args.data)
        gen = ganforge.load_generator(run, checkpoint_name=args.checkpoint)
        results["trained_step"] = gen.step
        if "trained" in parts:
            results["trained_generated"] = generated(gen, args, dist)
            dump()
        if "real" in parts:
            results["trained_real_heldout"] = real(gen, args, dist, figure=args.figures / "edit_projection.png"
                                                   if args.figures else None)
            dump()
        if "sefa" in parts:
            results["sefa_monotonic"] = sefa_monotonic(gen, dist)
            if args.figures:
                from ganforge.editing import save_direction_grid

                grid = save_direction_grid(gen, sefa(gen, k=4), args.figures / "edit_sefa_grid.png", seed=3)
                from PIL import Image

                from ganforge.imageio import save_image

                with Image.open(grid) as im:  # 3x nearest, so 32 px items are visible in the docs
                    save_image(im.resize((im.width * 3, im.height * 3), Image.NEAREST), grid)
            dump()
        if "boundary" in parts:
            pairs = [tuple(int(c) for c in pair.split("-")) for pair in args.pairs.split(",")]
            results["boundary"] = boundary_rates(gen, pairs, data=args.data)
            dump()
    if "speed" in parts:
        results["speed_256"] = speed(args)
        dump()
    print(json.dumps(results, indent=2))


def _cpu() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        model = next(line for line in open("/proc/cpuinfo") if line.startswith("model name")).split(":")[1].strip()
        return f"{model}; avx512: {'avx512f' in flags}, avx2: {'avx2' in flags}"
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()

"""Text-to-image on captioned digits (issue 20): build the data with a held-out colour-digit pair,
train through the CLI alone (``ganforge train --data DIR --text --resolution 32 --steps N``), and
score the samples of every evaluation prompt: the digit by ganforge's MNIST classifier (on the
ink as grey, ``text.digits.ink_mask``, with and without its noise floor), the ink colour by ``text.digits.classify_ink``; seen vs
unseen combinations, and each phrasing ("seven" / "7" / "the digit seven") apart.

    GANFORGE_DATA_DIR=../shared/assets/datasets nice -n 10 python benchmarks/text_digits.py \\
        --data runs/text-digits-data --out runs/text-digits --steps 3000 --threads 2

``--extra`` passes more options to ``ganforge train`` (the issue's bar is with none). ``--skip-train``
scores an existing run. ``--compare-conditional`` also trains the class-conditional model on the
same images (one class folder per digit, linked, not copied) at the same steps, batch, width and
generator upsampling,
and measures FID of both against the captioned images (``ganforge eval``, ``--fid-n`` samples):
does text cost quality? Prints a table and writes ``--json``. Records the command, the torch
threads and the CPU flags, so figures can be compared only where those match.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma") if f in flags)
    except OSError:
        pass
    return platform.processor()


def build_data(folder: Path, n: int, holdout) -> None:
    from ganforge.text.digits import build_captioned_digits

    if not (folder / "labels.json").is_file():
        print(build_captioned_digits(folder, n=n, resolution=32, seed=0, holdout=holdout))


def train(data: Path, out: Path, steps: int, threads: int, extra: list[str], device: str) -> tuple[list[str], float]:
    cmd = [sys.executable, "-m", "ganforge", "train", "--data", str(data), "--text", "--resolution", "32",
           "--steps", str(steps), "--out", str(out), *extra]
    if device != "auto":
        cmd += ["--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return cmd, time.perf_counter() - t0


def score(run: Path, holdout, per_prompt: int, seed: int, device: str, unseen_per_prompt: int = 100) -> dict:
    """Every evaluation prompt's samples scored by ``text.digits.score_digit_images``: the digit on
    the ink mask with the border's noise floor subtracted (``digit``) and on the raw mask
    (``digit_raw``, this benchmark's figure before session 5), the ink colour."""
    import torch

    import ganforge
    from ganforge.metrics.classifier import load_classifier
    from ganforge.text.digits import evaluation_prompts, score_digit_images

    gen = ganforge.load_generator(run).to(device, "fp32")
    clf = load_classifier("mnist", progress=False).eval()
    prompts = evaluation_prompts(holdout)
    images, per_image, spreads = [], [], []
    for split, n in (("seen", per_prompt), ("unseen", unseen_per_prompt)):  # more of the few unseen prompts
        group = [p for p in prompts if p["split"] == split]
        for i in range(0, len(group), max(1, 320 // n)):
            chunk = group[i:i + max(1, 320 // n)]
            x = gen.sample(n, prompts=[p["prompt"] for p in chunk], seed=seed).cpu() * 2 - 1
            images.append(x)
            per_image += [p for p in chunk for _ in range(n)]
            # diversity: the per-pixel standard deviation over one prompt's first 10 latents (0 when
            # G ignores z and draws one image per prompt, which a digit score alone would not show)
            spreads += x.view(len(chunk), n, *x.shape[1:])[:, :10].std(dim=1).flatten(1).mean(1).tolist()
    images = torch.cat(images)
    spread = sum(spreads) / len(spreads)
    floor = score_digit_images(images, per_image, classifier=clf)
    raw = score_digit_images(images, per_image, classifier=clf, noise_floor=False)
    hits = defaultdict(lambda: [0, 0, 0, 0])  # (split, phrasing) -> digit, raw-mask digit, ink hits, count
    for p, d, d_raw, ink in zip(per_image, floor["digits"], raw["digits"], floor["inks"]):
        h = hits[(p["split"], p["phrasing"])]
        h[0] += d == p["digit"]
        h[1] += d_raw == p["digit"]
        h[2] += ink == p["ink"]
        h[3] += 1
    table = {}
    for split in ("seen", "unseen"):
        keys = [k for k in hits if k[0] == split]
        tot = [sum(hits[k][i] for k in keys) for i in range(4)]
        table[split] = {"digit": tot[0] / tot[3], "digit_raw": tot[1] / tot[3], "ink": tot[2] / tot[3], "n": tot[3],
                        "by_phrasing": {k[1]: {"digit": hits[k][0] / hits[k][3], "digit_raw": hits[k][1] / hits[k][3],
                                               "ink": hits[k][2] / hits[k][3]} for k in sorted(keys)}}
    return {"step": gen.step, "per_prompt": per_prompt, "unseen_per_prompt": unseen_per_prompt,
            "classifier_test_accuracy": clf.test_accuracy, "diversity": spread,
            "protocol": {**floor["protocol"], "digit_raw": raw["protocol"]["digit"]}, **table}


def real_diversity(data: Path, per_group: int) -> float:
    """The same spread over real images: groups of ``per_group`` images of one (digit, ink,
    background), averaged over the groups the data has."""
    import numpy as np
    import torch
    from PIL import Image

    from ganforge.text.digits import load_digit_labels

    groups = defaultdict(list)
    for name, lab in sorted(load_digit_labels(data)["files"].items()):
        groups[(lab["digit"], lab["ink"], lab["background"])].append(name)
    spreads = []
    for names in groups.values():
        if len(names) >= per_group:
            x = torch.stack([torch.from_numpy(np.asarray(Image.open(data / n).convert("RGB"))) for n in names[:per_group]])
            spreads.append((x.float() / 127.5 - 1).std(dim=0).mean().item())
    return sum(spreads) / max(len(spreads), 1)


def by_digit(data: Path, folder: Path) -> Path:
    """The captioned digits as class folders (0/ ... 9/, symbolic links): the class-conditional
    model's view of the same images."""
    from ganforge.text.digits import load_digit_labels

    for name, info in load_digit_labels(data)["files"].items():
        link = folder / str(info["digit"]) / name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((data / name).resolve())
    return folder


def fid(run: Path, data: Path, n: int, threads: int) -> dict:
    out = run / "fid.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "ganforge", "eval", str(run), str(data), "--n", str(n), "--metrics", "fid",
                    "--json", str(out), "--quiet"], check=True, env=env)
    return json.loads(out.read_text())


def step_cost(steps: int = 16, batch: int | None = None, width: int | None = None) -> dict:
    """CPU seconds (process time, one thread) per training step of the dfgan networks of a
    ``--text --arch dfgan`` run at 32² (G and D, the lazy MA-GP every 4 steps, Adam), on random
    tensors: a figure that a busy machine inflates less than wall time."""
    import torch

    from ganforge.config import TEXT_DFGAN_BATCH, TEXT_DFGAN_WIDTH
    from ganforge.nets import GanNetSpec, build_gan
    from ganforge.train.textgan import matching_aware_gp

    torch.set_num_threads(1)
    batch, width = batch or TEXT_DFGAN_BATCH, width or TEXT_DFGAN_WIDTH
    G, D = build_gan("dfgan", GanNetSpec(resolution=32, channels=3, z_dim=100, width=width, text_dim=256))
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    og, od = torch.optim.Adam(G.parameters(), fused=True), torch.optim.Adam(D.parameters(), fused=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    c, z = torch.randn(batch, 256), torch.randn(batch, 100)

    def step(i: int) -> None:
        fake = G(z, c)
        if i % 4 == 0:
            dr, dm, gp = matching_aware_gp(D, x, c, c.roll(1, 0))
        else:
            h = D.features(x)
            dr, dm, gp = D.logits(h, c), D.logits(h, c.roll(1, 0)), torch.zeros(())
        df = D(fake.detach(), c)
        loss = torch.relu(1 - dr).mean() + 0.5 * (torch.relu(1 + df).mean() + torch.relu(1 + dm).mean()) + 8 * gp
        od.zero_grad()
        loss.backward()
        od.step()
        D.requires_grad_(False)
        og.zero_grad()
        (-D(fake, c).mean()).backward()
        og.step()
        D.requires_grad_(True)

    for i in range(4):
        step(i)
    t = time.process_time()
    for i in range(steps):
        step(i)
    return {"batch": batch, "width": width, "cpu_s_per_step_1thread": (time.process_time() - t) / steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("runs/text-digits-data"))
    ap.add_argument("--out", type=Path, default=Path("runs/text-digits"))
    ap.add_argument("--n", type=int, default=10000, help="images to build")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-prompt", type=int, default=10, help="samples per seen prompt")
    ap.add_argument("--unseen-per-prompt", type=int, default=100,
                    help="samples per unseen prompt (9 prompts: 10 each would give 30 per phrasing)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--extra", default="", help="more 'ganforge train' options, one string")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cost", action="store_true", help="only measure CPU seconds per step (step_cost) and exit")
    ap.add_argument("--compare-conditional", action="store_true",
                    help="also train the class-conditional model (same steps, batch, width) and compare FID")
    ap.add_argument("--fid-n", type=int, default=2000, help="samples per FID (--compare-conditional)")
    args = ap.parse_args()
    import torch

    if args.cost:
        print(json.dumps({**step_cost(), "cpu_flags": cpu_flags(), "load": os.getloadavg()[0]}))
        return 0

    torch.set_num_threads(args.threads)
    holdout = (("red", 7),)
    build_data(args.data, args.n, holdout)
    record = {"cpu_flags": cpu_flags(), "threads": args.threads, "torch": torch.__version__,
              "holdout": ["red:7"], "load_before": os.getloadavg()[0]}
    if not args.skip_train:
        cmd, seconds = train(args.data, args.out, args.steps, args.threads, args.extra.split(), args.device)
        record.update(command=" ".join(cmd[1:]), train_seconds=round(seconds, 1), load_after=os.getloadavg()[0])
    record.update(score(args.out, holdout, args.per_prompt, seed=1234, device=args.device,
                        unseen_per_prompt=args.unseen_per_prompt))
    record["real_diversity"] = real_diversity(args.data, 10)
    print(f"\nrun {args.out} (step {record['step']}), {record.get('train_seconds', '-')} s training, "
          f"threads {args.threads}, CPU flags: {record['cpu_flags']}; diversity (per-prompt pixel std) "
          f"{record['diversity']:.3f}, real images of one caption {record['real_diversity']:.3f}")
    print("| split | phrasing | digit acc | digit acc (raw mask) | ink acc |\n|---|---|---|---|---|")
    for split in ("seen", "unseen"):
        t = record[split]
        for ph, v in t["by_phrasing"].items():
            print(f"| {split} | {ph} | {v['digit']:.1%} | {v['digit_raw']:.1%} | {v['ink']:.1%} |")
        print(f"| **{split}** | all ({t['n']} samples) | **{t['digit']:.1%}** | {t['digit_raw']:.1%} "
              f"| **{t['ink']:.1%}** |")
    if args.compare_conditional:
        cond = args.out.parent / (args.out.name + "-conditional")
        width = json.loads((args.out / "config.json").read_text())["options"]["width"]
        batch = json.loads((args.out / "config.json").read_text())["options"]["batch_size"]
        spec = json.loads((args.out / "run.json").read_text())["spec"]
        upsample = "nearest" if spec.get("resize_conv") else "transposed"
        if not (cond / "summary.json").is_file():
            classes = by_digit(args.data, args.data.parent / (args.data.name + "-by-digit"))
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ganforge", "train", "--data", str(classes), "--conditional",
                            "--resolution", "32", "--steps", str(args.steps), "--width", str(width),
                            "--batch-size", str(batch), "--g-upsample", upsample, "--out", str(cond), "--quiet"], check=True, env=env)
            record["conditional_train_seconds"] = round(time.perf_counter() - t0, 1)
        record["fid"] = {"text": fid(args.out, args.data, args.fid_n, args.threads)["results"][0],
                         "conditional": fid(cond, args.data, args.fid_n, args.threads)["results"][0]}
        print(f"FID vs the captioned images (n = {args.fid_n}): text {record['fid']['text'].get('value')}, "
              f"class-conditional {record['fid']['conditional'].get('value')}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

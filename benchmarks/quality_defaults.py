"""Quality at a fixed budget, several seeds: ``ganforge train`` with its defaults vs the reference
loop of pytorch/examples (``dcgan/main.py``) at the same steps and batch.

Cases (``--cases``, comma list):

- ``mnist64``: MNIST 64x64 unconditional, 800 steps, batch 64 (the issue's failing command);
- ``fashion32``: Fashion-MNIST 32x32, 2000 steps, batch 64;
- ``cmnist32``: conditional MNIST 32x32, 2000 steps (benchmarks/quality_mnist.py's QUALITY_RECIPE,
  the demo's recipe); ganforge only (the reference loop is unconditional), plus the share of
  samples the MNIST classifier reads as the requested digit.

Each run: domain FID, precision and recall (ganforge's classifier features for the dataset, n
samples vs the dataset's test split), and its samples grid. The reference loop is NOT part of
ganforge: pass the path of a checkout's ``dcgan/main.py`` with ``--reference`` or the environment
variable ``GANFORGE_REFERENCE_DCGAN``; without it the reference runs are skipped with one line.
It runs as a subprocess, unchanged, on torchvision's MNIST (a writable copy of the files ganforge's
``mnist`` loader uses; for Fashion-MNIST torchvision's FashionMNIST class stands in for MNIST, same
format), with ``--niter 1`` and its data loader cut at the step budget. Its architecture exists only
at 64x64, so for a 32x32 case it trains at 64 and its samples are evaluated at 32.

Runs are kept in ``--out``: a rerun resumes unfinished ganforge runs and skips finished ones, and
``--eval-only`` evaluates whatever is there (partial runs: their latest checkpoint, step reported).

    GANFORGE_REFERENCE_DCGAN=/path/to/examples/dcgan/main.py OMP_NUM_THREADS=2 \\
        python benchmarks/quality_defaults.py --out runs/quality-defaults --cases mnist64,fashion32,cmnist32
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "mnist64": dict(data="mnist", resolution=64, steps=800, batch_size=64, seeds=(0, 1, 2), conditional=False),
    "fashion32": dict(data="fashion-mnist", resolution=32, steps=2000, batch_size=64, seeds=(0,), conditional=False),
    "cmnist32": dict(data="mnist", resolution=32, steps=2000, batch_size=64, seeds=(0,), conditional=True),
}
TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def ganforge_run(case: dict, seed: int, out: Path, steps: int, overrides: dict | None = None) -> Path:
    import ganforge

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality_mnist import QUALITY_RECIPE

    if case["conditional"]:
        options = dict(QUALITY_RECIPE, steps=steps, seed=seed, ckpt_every=500)
    else:  # the plain command: every other option at its default
        options = dict(data=case["data"], resolution=case["resolution"], steps=steps,
                       batch_size=case["batch_size"], seed=seed, ckpt_every=100)
    options.update(overrides or {})  # --set: a variant of the defaults
    ganforge.train_gan(ganforge.GanConfig(**options, progress=False), out=out, resume="auto")
    return out


def _reference_worker(argv: list[str]) -> None:
    """(subprocess) Run the reference script unchanged, its DataLoader cut at --steps batches,
    then sample its trained G into a folder of PNGs."""
    import runpy

    import torch
    import torch.utils.data
    import torchvision.datasets as dset
    from torchvision.utils import save_image

    p = argparse.ArgumentParser()
    for name in ("script", "data", "root", "outf", "samples"):
        p.add_argument(f"--{name}", required=True)
    for name in ("steps", "seed", "n", "batch"):
        p.add_argument(f"--{name}", type=int, required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    base = torch.utils.data.DataLoader

    class Budget(base):  # the same loader, stopped after the step budget
        def __iter__(self):
            for i, batch in enumerate(super().__iter__()):
                if i >= a.steps:
                    return
                yield batch

        def __len__(self):
            return min(a.steps, super().__len__())

    torch.utils.data.DataLoader = Budget
    if a.data == "fashion-mnist":
        dset.MNIST = dset.FashionMNIST
    sys.argv = [a.script, "--dataset", "mnist", "--dataroot", a.root, "--imageSize", "64", "--batchSize",
                str(a.batch), "--niter", "1", "--workers", "0", "--manualSeed", str(a.seed), "--outf", a.outf]
    scope = runpy.run_path(a.script, run_name="__main__")
    G = scope["netG"].eval()
    folder = Path(a.samples)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(1000 + a.seed)
    with torch.no_grad():
        for start in range(0, a.n, 250):
            z = torch.randn(min(250, a.n - start), 100, 1, 1, generator=gen)
            for i, img in enumerate(G(z).add(1).div(2).clamp(0, 1)):
                save_image(img, folder / f"{start + i:05d}.png")


def reference_run(script: Path, case: dict, seed: int, out: Path, steps: int, n: int) -> Path | None:
    samples = out / "samples"
    if (out / "done").is_file():
        return samples
    from ganforge.paths import data_dir, home

    name = TORCHVISION_DIRS[case["data"]]
    source = (data_dir() or home() / "datasets") / name / "raw"  # where ganforge's loader reads them
    if not source.is_dir():
        print(f"reference {case['data']}: skipped, {source} not found")
        return None
    root = out.parent / "reference-data"
    if not (root / name / "raw").is_dir():  # torchvision extracts next to the .gz: a writable copy
        shutil.copytree(source, root / name / "raw")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--reference-worker", "--script", str(script), "--data", case["data"],
           "--root", str(root), "--outf", str(out), "--samples", str(samples), "--steps", str(steps),
           "--seed", str(seed), "--n", str(n), "--batch", str(case["batch_size"])]
    with open(out / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    (out / "done").write_text("ok\n")
    return samples


def measure(source: Path, case: dict, n: int) -> dict:
    from ganforge.metrics.evaluation import evaluate

    reference = f"{case['data']}:test"
    results = evaluate(str(source), reference, metrics="fid,pr", n=n, resolution=case["resolution"]
                       if source.is_dir() and not (source / "run.json").is_file() else None, progress=False)
    row = {r.metric: round(r.value, 3) for r in results}
    row["extractor"] = results[0].protocol["extractor"].get("extractor")
    row["n"] = results[0].protocol["n_a"]
    return row


def requested_digit(run: Path) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality_mnist import class_accuracy

    return round(class_accuracy(str(run))[0], 4)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--reference-worker":
        return _reference_worker(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/quality-defaults")
    p.add_argument("--cases", default="mnist64,fashion32,cmnist32")
    p.add_argument("--seeds", default="", help="comma list overriding each case's seeds")
    p.add_argument("--steps", type=int, default=0, help="override each case's step budget (a quick check)")
    p.add_argument("--n", type=int, default=0, help="samples per evaluation (default 5000; cmnist32 10000)")
    p.add_argument("--reference", default=os.environ.get("GANFORGE_REFERENCE_DCGAN", ""),
                   help="path of pytorch/examples dcgan/main.py (or GANFORGE_REFERENCE_DCGAN)")
    p.add_argument("--only", choices=("both", "ganforge", "reference"), default="both")
    p.add_argument("--eval-only", action="store_true", help="evaluate the runs in --out as they are")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="a GanConfig option for the ganforge runs, e.g. --set g_upsample=transposed "
                        "(a variant of the defaults; repeatable; values parsed as JSON, else text)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = Path(args.out)
    script = Path(args.reference) if args.reference else None
    if args.only != "ganforge" and (script is None or not script.is_file()):
        print(f"reference loop: skipped (no dcgan/main.py at {args.reference or '$GANFORGE_REFERENCE_DCGAN'})")
        script = None
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    rows = []
    for name in [c for c in args.cases.split(",") if c]:
        case = CASES[name]
        steps = args.steps or case["steps"]
        n = args.n or (10_000 if case["conditional"] else 5000)
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else case["seeds"]
        for seed in seeds:
            if args.only != "reference":
                run = out / f"{name}-ganforge-s{seed}"
                t0 = time.perf_counter()
                if not args.eval_only:
                    ganforge_run(case, seed, run, steps, overrides)
                row = {"case": name, "loop": "ganforge defaults", "set": overrides, "seed": seed, "train_s": round(time.perf_counter() - t0)}
                if (run / "run.json").is_file():
                    from ganforge.sample import load_generator

                    row["step"] = load_generator(run).step
                    row.update(measure(run, case, n))
                    if case["conditional"]:
                        row["requested_digit"] = requested_digit(run)
                    row["grid"] = str(run / "samples" / "latest.png")
                rows.append(row)
                print(json.dumps(row), flush=True)
            if script is not None and not case["conditional"] and args.only != "ganforge":
                ref = out / f"{name}-reference-s{seed}"
                t0 = time.perf_counter()
                samples = ref / "samples" if args.eval_only else reference_run(script, case, seed, ref, steps, n)
                row = {"case": name, "loop": "pytorch/examples dcgan", "seed": seed, "step": steps,
                       "train_s": round(time.perf_counter() - t0)}
                if samples is not None and samples.is_dir():
                    row.update(measure(samples, case, n))
                    row["grid"] = str(ref / "fake_samples_epoch_000.png")
                rows.append(row)
                print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

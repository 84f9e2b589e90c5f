"""Differentially private conditional DCGAN on MNIST / Fashion-MNIST (``train --dp-epsilon``, issue 21).

For each run: ``ganforge train --dp-epsilon E --dp-delta 1e-5 ...`` in a child process (its CPU
time measured with getrusage), then FID of 10,000 EMA samples against the real test split with the
domain extractor (``ganforge eval RUN mnist:test --extractor mnist``), the class accuracy of the
samples (the domain classifier's label = the requested class; NOT the utility metric), and the
utility accuracy ("train on synthetic, test on real") through ``ganforge eval RUN --utility
SPLIT`` when this ganforge has it (else recorded as missing).

    python benchmarks/dp_mnist.py --out runs/dp-bench             # the full runs (hours on a CPU)
    python benchmarks/dp_mnist.py --out runs/dp-short --short     # a few minutes each: pipeline check
    python benchmarks/dp_mnist.py --out runs/dp-cost --cost        # one private D step vs a plain one

Results: ``OUT/results.json`` (one object per run) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

# One recipe for every run (a per-example dcgan D without normalisation, each fake its own example, the
# accountant's noise for the planned D steps); the runs differ in data and epsilon. Full: 10,000 G steps x 2 D
# steps, batch 128 (43 epochs of Poisson batches at q = 128/60,000); short: 100 G steps (200 D steps). Until
# session 15 the recipe was --d-norm group --n-critic 10 for 2,000 G steps (the same 20,000 D steps and noise).
RECIPE = ["--conditional", "--resolution", "32", "--width", "32", "--batch-size", "128", "--n-critic", "2",
          "--d-norm", "none", "--lr-g", "2e-4", "--lr-d", "2e-4", "--dp-delta", "1e-5", "--dp-max-grad-norm", "1.0",
          "--sample-every", "200", "--ckpt-every", "200", "--log-every", "10", "--quiet"]
RUNS = {  # name: (data, epsilon, domain extractor / reference split)
    "mnist-eps10": ("mnist", 10.0, "mnist"),
    "mnist-eps1": ("mnist", 1.0, "mnist"),
    "fashion-eps10": ("fashion-mnist", 10.0, "fashion-mnist"),
}
FULL_STEPS, SHORT_STEPS = 10000, 100


def ganforge(*args: str, threads: int) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI; returns the result and the child's CPU seconds (user + system)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise SystemExit(f"ganforge {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result, cpu


def has_utility(threads: int) -> bool:
    result = subprocess.run([sys.executable, "-m", "ganforge", "eval", "--help"], capture_output=True, text=True)
    return "--utility" in result.stdout


def class_accuracy(run: Path, dataset: str, per_class: int = 200) -> float:
    import torch

    import ganforge
    from ganforge.metrics.classifier import load_classifier

    gen = ganforge.load_generator(str(run))
    clf = load_classifier(dataset, progress=False).eval()
    labels = torch.arange(gen.num_classes).repeat_interleave(per_class)
    images = gen.sample(len(labels), labels=labels, seed=123)  # as benchmarks/quality_mnist.py
    with torch.no_grad():
        predicted = clf(images).argmax(1)
    return float((predicted == labels).float().mean())


def cost(threads: int, repeats: int = 5) -> dict:
    """Seconds of one D step (batch 128 real + 128 fake, the recipe's conditional D, 32x32) with
    per-sample gradients, clipping and noise vs a plain backward, alternating in one process."""
    import torch

    from ganforge.config import GanConfig
    from ganforge.nets import GanNetSpec
    from ganforge.train import dp
    from ganforge.train.gan import GanTask

    torch.set_num_threads(threads)
    cfg = GanConfig(data="mnist", conditional=True, dp_epsilon=10, steps=100, batch_size=128, width=32)
    spec = GanNetSpec(resolution=32, channels=1, z_dim=100, num_classes=10, width=32)
    private = GanTask(cfg, spec, torch.device("cpu"), dp_plan=dp.plan(cfg.resolved(), 60000))
    plain = GanTask(cfg, spec, torch.device("cpu"))  # the same GroupNorm D, no hooks
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
    f = torch.randn(128, 1, 32, 32, generator=g)

    def loss(D):
        return private.loss.d_loss(D(x, y), D(f, y), 1.0) * 128

    times = {"plain": [], "private": []}
    for _ in range(repeats + 1):  # the first round warms up
        t0 = time.perf_counter()
        loss(plain.D).backward()
        plain.D.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        priv = private.private
        priv.private_gradient(priv.per_sample_grads(lambda: loss(private.D), 128), g)
        t2 = time.perf_counter()
        times["plain"].append(t1 - t0)
        times["private"].append(t2 - t1)
    med = {k: sorted(v[1:])[len(v[1:]) // 2] for k, v in times.items()}
    return {"plain_s": med["plain"], "private_s": med["private"], "ratio": med["private"] / med["plain"],
            "d_parameters": sum(p.numel() for p in plain.D.parameters()), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--short", action="store_true", help=f"{SHORT_STEPS} G steps per run instead of {FULL_STEPS}")
    ap.add_argument("--only", default="", help="comma list of " + ", ".join(RUNS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=10000)
    ap.add_argument("--cost", action="store_true", help="only time a private D step against a plain one")
    ap.add_argument("--extra-train-args", default="",
                    help='more `ganforge train` options, one string (a variant, e.g. "--n-critic 20 --width 64"); '
                         "later options override the recipe's")
    args = ap.parse_args()
    if args.cost:
        print(json.dumps(cost(args.threads)))
        return
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = SHORT_STEPS if args.short else FULL_STEPS
    names = [n for n in (args.only.split(",") if args.only else RUNS)]
    utility = has_utility(args.threads)
    results = []
    for name in names:
        data, eps, domain = RUNS[name]
        run = out / name
        cmd = ["train", "--data", data, "--dp-epsilon", str(eps), "--steps", str(steps), *RECIPE,
               *shlex.split(args.extra_train_args), "--out", str(run)]  # an existing run dir is resumed
        t0 = time.perf_counter()
        _, cpu = ganforge(*cmd, threads=args.threads)
        wall = time.perf_counter() - t0
        summary = json.loads((run / "summary.json").read_text())
        row = {"run": name, "command": "ganforge " + " ".join(cmd), "steps": steps, "cpu_s": cpu, "wall_s": wall,
               "dp": summary["dp"], "short": args.short}
        fid_json = run / "eval-fid.json"
        ganforge("eval", str(run), f"{domain}:test", "--metrics", "fid", "--extractor", domain, "--n", str(args.n_eval),
                 "--json", str(fid_json), "--quiet", threads=args.threads)
        row["fid"] = _fid(json.loads(fid_json.read_text()))
        row["class_accuracy"] = class_accuracy(run, domain)
        if utility:
            util_json = run / "eval-utility.json"
            ganforge("eval", str(run), "--utility", f"{domain}:test", "--json", str(util_json),
                     "--quiet", threads=args.threads)
            row["utility"] = json.loads(util_json.read_text())
        else:
            row["utility"] = None  # TODO: `ganforge eval --utility` (issue 21 item 2) is not in this build
        results.append(row)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    print("| run | epsilon spent | sigma | CPU s | FID (domain) | class acc. | utility |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        util = "n/a (no --utility)" if r["utility"] is None else f"{r['utility']['utility']['value']:.3f}"
        print(f"| {r['run']} | {r['dp']['epsilon']:.3f} | {r['dp']['noise_multiplier']:.3f} | {r['cpu_s']:.0f} | "
              f"{r['fid']:.1f} | {r['class_accuracy']:.3f} | {util} |")


def _fid(report) -> float:
    """The FID value from ``ganforge eval --json`` output (a list of results or one object)."""
    items = report if isinstance(report, list) else report.get("results", [report])
    for item in items:
        if isinstance(item, dict):
            for key in ("fid", "value"):
                if isinstance(item.get(key), (int, float)):
                    return float(item[key])
            if isinstance(item.get("metrics"), dict) and "fid" in item["metrics"]:
                value = item["metrics"]["fid"]
                return float(value["value"] if isinstance(value, dict) else value)
    raise SystemExit(f"no FID in {report!r:.300}")


if __name__ == "__main__":
    main()

"""Membership-inference audit of a GAN trained on a small MNIST subset (docs/privacy.md).

Trains (unless the run directory already holds a finished run of these options; a partial one is
resumed) a conditional DCGAN on the first ``--members`` MNIST training images for ``--steps``
steps, so that it overfits, then runs ``ganforge audit`` on it: members = those images
(``mnist:train[:N]``), non-members = as many MNIST test images, the calibration reference = 2,000
other MNIST training images (``mnist:train[N:N+2000]``). Prints and writes the JSON and ROC plot.

    nice -n 10 python benchmarks/audit_mnist.py --run runs/mnist500 [--members 500] [--steps 2000]
    # audit an existing run only (e.g. a DP run trained on the same 500 images):
    python benchmarks/audit_mnist.py --run runs/mnist500-dp --no-train

``--extra-train-args`` passes further options to ``ganforge train`` (e.g. ``"--dp-epsilon 10"``);
the audit is the same for any run trained on ``mnist:train[:N]``.

``--repeats R`` adds R audits whose non-members are disjoint slices of the *training* split that no
run trained on (``mnist:train[N+2000+i*N : N+2000+(i+1)*N]``: same population as the members, so the
train/test difference is not mixed in) and reports each attack's mean, standard deviation and range
over them: a 500-vs-500 AUC moves by a few hundredths with the draw alone. Run it on a run trained
on *all* training images (both sets members, ``--no-train``) for the attacks' floor on these sets.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="run directory (trained here unless --no-train)")
    ap.add_argument("--members", type=int, default=500, help="training images: the first N of mnist:train")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--k", type=int, default=10000, help="generated samples for GAN-Leaks")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-train", action="store_true", help="audit --run as it is")
    ap.add_argument("--extra-train-args", default="", help="more `ganforge train` options, one string")
    ap.add_argument("--out", default=None, help="folder for audit.json / roc.png (default: RUN/audit only)")
    ap.add_argument("--repeats", type=int, default=0,
                    help="also audit against R disjoint unused training-split slices; mean / std / range")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    py = [sys.executable, "-m", "ganforge"]
    n = args.members
    timings = {}
    if not args.no_train:
        cmd = py + ["train", "--data", "mnist", "--max-images", str(n), "--conditional", "--width", str(args.width),
                    "--resolution", "32", "--steps", str(args.steps), "--batch-size", "64", "--watchdog", "off",
                    # the paper's Adam betas, as the private runs (and docs/privacy.md's figures) use:
                    # a non-private run and a DP run then differ by the privacy alone
                    "--beta1", "0.5", "--beta2", "0.999",
                    "--seed", "0", "--out", args.run, "--quiet", *shlex.split(args.extra_train_args)]
        print("$", shlex.join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        timings["train_s"] = round(time.perf_counter() - start, 1)
    out = Path(args.out or Path(args.run) / "audit")
    cmd = audit_command(py, args, f"mnist:test[:{n}]", out / "audit-benchmark.json", out / "roc-benchmark.png")
    print("$", shlex.join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    timings["audit_s"] = round(time.perf_counter() - start, 1)
    doc = json.loads((out / "audit-benchmark.json").read_text())
    print(json.dumps({"run": args.run, "step": doc["protocol"]["step"], **timings,
                      **{k: {"auc": round(v["auc"], 4), "tpr_at_1pct_fpr": round(v["tpr_at_1pct_fpr"], 4)}
                         for k, v in doc["attacks"].items()}}, indent=2))
    if args.repeats:
        print(json.dumps(repeated(py, env, args, out), indent=2))
    return 0


def audit_command(py: list[str], args, non_members: str, json_path: Path, roc_path: Path) -> list[str]:
    """``ganforge audit`` of ``args.run``: members the first N training images, the calibration
    reference the next 2,000, ``non_members`` as given."""
    n = args.members
    return py + ["audit", args.run, "--members", f"mnist:train[:{n}]", "--non-members", non_members,
                 "--reference", f"mnist:train[{n}:{n + 2000}]", "--k", str(args.k), "--device", "cpu",
                 "--json", str(json_path), "--out", str(roc_path), "--quiet"]


def repeated(py: list[str], env: dict, args, out: Path) -> dict:
    """The audit with non-members from R disjoint unused slices of the training split."""
    n, aucs = args.members, {}
    for i in range(args.repeats):
        lo = n + 2000 + i * n
        path = out / f"audit-train-nonmembers-{i}.json"
        cmd = audit_command(py, args, f"mnist:train[{lo}:{lo + n}]", path, out / f"roc-train-nonmembers-{i}.png")
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        for attack, result in json.loads(path.read_text())["attacks"].items():
            aucs.setdefault(attack, []).append(result["auc"])
    summary = {"non_members": f"{args.repeats} disjoint slices of mnist:train from {n + 2000}, {n} each"}
    for attack, values in aucs.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[attack] = {"auc_mean": round(statistics.mean(values), 4), "auc_std": round(std, 4),
                           "auc_min": round(min(values), 4), "auc_max": round(max(values), 4)}
    (out / "audit-repeats.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(main())

"""Feature-extraction throughput (images/s): ganforge's extractors vs the reference path.

- inception, side by side in one process on the same uint8 MNIST images (set A = the first n of
  mnist:test, set B = the first n of mnist:train, grey replicated to RGB for torch-fidelity):
  * ``old``: ``InceptionExtractor(fast=False)``, torch-fidelity's own module (the path before the
    fast one; bit-identical to torch-fidelity),
  * ``new``: ``InceptionExtractor()`` (the default fast fp32 path: conv+BN folded, channels_last,
    separable TF1 resize, inference mode),
  * ``torch-fidelity``: its ``get_featuresdict_from_dataset`` with its ``FeatureExtractorInceptionV3``
    built by its own loader from the same weights (offline: a temporary full state-dict file),
  * ``bf16`` (with ``--bf16``): the fast path with ``precision="auto"``, only when that resolves to
    bf16 on this machine (native AVX512-BF16/AMX); reported, not used by default.
  After one warm-up batch per path, each repeat times every path on all 2n images (A, B, A, B, ... so a shared machine's load falls
  on all of them); the median wall time gives img/s, the median of the per-repeat ratios the
  speed-up, and the process CPU time per image is shown too. The FID between A and B is computed
  from each path's features; the reference is torch-fidelity's own FID formula on torch-fidelity's
  features, and |dFID| is each path's distance to it.
- mnist: ganforge's domain extractor vs a plain ``torch.no_grad`` loop over the same network.

Usage:

    python benchmarks/bench_features.py --extractor inception --n 200 --repeats 2 [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _images(n: int, split: str = "test") -> torch.Tensor:
    from ganforge.data import load_dataset

    ds = load_dataset(f"mnist:{split}", resolution=28, max_images=n, progress=False)
    return ds.images


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(f for f in wanted if f in flags) or "no avx2"


def _torch_fidelity_extractor(path: Path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ganforge import weights

    state = dict(weights.load_state_dict(path))
    state.setdefault("fc.weight", torch.zeros(1008, 2048))
    state.setdefault("fc.bias", torch.zeros(1008))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "inception.pth"
        torch.save(state, file)
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(file))


def bench_inception(a: torch.Tensor, b: torch.Tensor, batch: int, repeats: int, bf16: bool) -> dict:
    """-> {path: {"img_s", "cpu_ms", "ratio", "fid", "dfid", "max_diff"}} plus "_reference_fid"."""
    from torch.utils.data import Dataset
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.utils import get_featuresdict_from_dataset

    from ganforge.metrics import core
    from ganforge.metrics.extractors import InceptionExtractor

    images = torch.cat([a, b])
    old = InceptionExtractor(fast=False)
    new = InceptionExtractor()
    theirs = _torch_fidelity_extractor(old.path)
    rgb = images.expand(-1, 3, -1, -1).contiguous()

    class Images(Dataset):
        def __len__(self) -> int:
            return len(rgb)

        def __getitem__(self, i: int) -> torch.Tensor:
            return rgb[i]

    paths = {
        "old": lambda: old.extract(images, batch_size=batch).features,
        "new": lambda: new.extract(images, batch_size=batch).features,
        "torch-fidelity": lambda: get_featuresdict_from_dataset(Images(), theirs, batch, False, True, False)["2048"],
    }
    if bf16:
        low = InceptionExtractor(precision="auto")
        if low._resolved_precision() == "bf16":
            paths["bf16"] = lambda: low.extract(images, batch_size=batch).features
        else:
            print("--bf16: precision 'auto' resolves to fp32 on this machine (no native bf16); no bf16 row")
    # Warm-up outside the timings: oneDNN primitive creation, the fast path's one-time fold.
    warm = images[:2]
    old.extract(warm), new.extract(warm), theirs(warm.expand(-1, 3, -1, -1).contiguous())
    if "bf16" in paths:
        low.extract(warm)
    wall: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    feats: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, fn in paths.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            feats.setdefault(name, out.float())
    n_a = len(a)
    ref = fid_statistics_to_metric(fid_features_to_statistics(feats["torch-fidelity"][:n_a]),
                                   fid_features_to_statistics(feats["torch-fidelity"][n_a:]), False)
    ref_fid = float(ref["frechet_inception_distance"])
    rows: dict = {"_reference_fid": ref_fid}
    for name in paths:
        fid = core.fid(feats[name][:n_a], feats[name][n_a:])
        rows[name] = {
            "img_s": len(images) / statistics.median(wall[name]),
            "cpu_ms": 1000 * statistics.median(cpu[name]) / len(images),
            "ratio": statistics.median(o / t for o, t in zip(wall["old"], wall[name])),
            "cpu_ratio": statistics.median(cpu["old"]) / statistics.median(cpu[name]),
            "fid": fid, "dfid": abs(fid - ref_fid),
            "max_diff": float((feats[name] - feats["torch-fidelity"]).abs().max()),
        }
    return rows


def bench_mnist(images: torch.Tensor, batch: int, repeats: int) -> tuple[float, float, float]:
    from ganforge.metrics.extractors import get_extractor

    ours = get_extractor("mnist", progress=False)
    model = ours.model

    def plain() -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                out.append(model.features(images[i:i + batch].float() / 255))
        return torch.cat(out)

    diff = float((ours.extract(images, batch_size=batch).features - plain()).abs().max())
    t_ours, t_plain = [], []
    for _ in range(repeats):
        t_ours.append(_time(lambda: ours.extract(images, batch_size=batch)))
        t_plain.append(_time(plain))
    return len(images) / statistics.median(t_ours), len(images) / statistics.median(t_plain), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64,
                        help="inception: images per set (A and B, FID between them); mnist uses 50x as many")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--extractor", default="both", choices=["inception", "mnist", "both"])
    parser.add_argument("--bf16", action="store_true",
                        help="inception: also time precision='auto' where it resolves to bf16 (not the default path)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s) of {os.cpu_count()} CPUs, CPU flags: {_cpu_flags()}, "
          f"batch {args.batch}, median of {args.repeats}, load average at start {load}")
    if args.extractor in ("inception", "both"):
        a, b = _images(args.n, "test"), _images(args.n, "train")
        rows = bench_inception(a, b, args.batch, args.repeats, args.bf16)
        ref = rows.pop("_reference_fid")
        print(f"inception  A = mnist:test[:{len(a)}], B = mnist:train[:{len(b)}], {len(a) + len(b)} images per pass; "
              f"torch-fidelity FID(A, B) = {ref:.6f}")
        for name, r in rows.items():
            print(f"  {name:15s} {r['img_s']:7.2f} img/s  {r['cpu_ms']:7.1f} CPU-ms/img  speed-up vs old {r['ratio']:5.2f}x "
                  f"(CPU time {r['cpu_ratio']:4.2f}x)  FID {r['fid']:.6f}  |dFID| {r['dfid']:.2e}  "
                  f"max|feature diff| {r['max_diff']:.2e}")
    if args.extractor in ("mnist", "both"):
        images = _images(min(10000, 50 * args.n))
        ours, plain, diff = bench_mnist(images, 500, args.repeats)
        print(f"mnist      n={len(images):5d}  ganforge {ours:8.1f} img/s  plain loop     {plain:8.1f} img/s  "
              f"ratio {ours / plain:.3f}  overhead {100 * (plain / ours - 1):+.1f}%  max|diff| {diff:.2e}")
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

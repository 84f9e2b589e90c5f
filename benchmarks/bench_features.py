"""Feature-extraction throughput (images/s): ganforge's extractors vs the reference path.

- inception: ``ganforge.metrics.extractors.InceptionExtractor.extract`` vs torch-fidelity's own
  ``get_featuresdict_from_dataset`` with torch-fidelity's ``FeatureExtractorInceptionV3`` built by
  torch-fidelity's loader from the same weights (offline: a temporary full state-dict file).
- mnist: ganforge's domain extractor vs a plain ``torch.no_grad`` loop over the same network.

Both sides get the same uint8 MNIST images (grey replicated to RGB for torch-fidelity), the same
batch size and thread count; the timings alternate (A, B, A, B, ...) and the median is reported,
because the machine may be shared. Usage:

    python benchmarks/bench_features.py --n 64 --repeats 3 [--threads 2] [--extractor inception|mnist|both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _images(n: int) -> torch.Tensor:
    from ganforge.data import load_dataset

    ds = load_dataset("mnist:test", resolution=28, max_images=n, progress=False)
    return ds.images


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_inception(images: torch.Tensor, batch: int, repeats: int) -> tuple[float, float, float]:
    from torch.utils.data import Dataset
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.utils import get_featuresdict_from_dataset

    from ganforge import weights
    from ganforge.metrics.extractors import InceptionExtractor

    ours = InceptionExtractor()
    state = dict(weights.load_state_dict(ours.path))
    state.setdefault("fc.weight", torch.zeros(1008, 2048))
    state.setdefault("fc.bias", torch.zeros(1008))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inception.pth"
        torch.save(state, path)
        theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    rgb = images.expand(-1, 3, -1, -1).contiguous()

    class Images(Dataset):
        def __len__(self) -> int:
            return len(rgb)

        def __getitem__(self, i: int) -> torch.Tensor:
            return rgb[i]

    run_ours = lambda: ours.extract(images, batch_size=batch)  # noqa: E731
    run_theirs = lambda: get_featuresdict_from_dataset(Images(), theirs, batch, False, True, False)  # noqa: E731
    # Same features (sanity), then timings.
    a = ours.extract(images[:batch], batch_size=batch).features
    b = get_featuresdict_from_dataset(Images(), theirs, batch, False, True, False)["2048"][:batch]
    diff = float((a - b).abs().max())
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(_time(run_ours))
        t_theirs.append(_time(run_theirs))
    return len(images) / statistics.median(t_ours), len(images) / statistics.median(t_theirs), diff


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
    parser.add_argument("--n", type=int, default=64, help="images for inception (mnist uses 50x as many)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--extractor", default="both", choices=["inception", "mnist", "both"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, median of {args.repeats}")
    if args.extractor in ("inception", "both"):
        images = _images(args.n)
        ours, theirs, diff = bench_inception(images, args.batch, args.repeats)
        print(f"inception  n={len(images):5d}  ganforge {ours:8.2f} img/s  torch-fidelity {theirs:8.2f} img/s  "
              f"ratio {ours / theirs:.3f}  overhead {100 * (theirs / ours - 1):+.1f}%  max|diff| {diff:.2e}")
    if args.extractor in ("mnist", "both"):
        images = _images(min(10000, 50 * args.n))
        ours, plain, diff = bench_mnist(images, 500, args.repeats)
        print(f"mnist      n={len(images):5d}  ganforge {ours:8.1f} img/s  plain loop     {plain:8.1f} img/s  "
              f"ratio {ours / plain:.3f}  overhead {100 * (plain / ours - 1):+.1f}%  max|diff| {diff:.2e}")


if __name__ == "__main__":
    main()

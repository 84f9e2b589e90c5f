"""Memory of streaming a prepared dataset as it grows: peak RSS while iterating the same number of
batches from 10k and 100k images (64² RGB), per reader.

The images are synthetic: uniform random noise written straight into ``images.npy`` by
``synthetic_prepared`` (no PNG encode/decode: decoding is not what is measured, and 100k PNGs
would take minutes to write), then indexed and checksummed by the library's own
``write_index``, so the directory is a genuine prepared dataset.

Each (size, reader) runs in a fresh process; after its imports the peak RSS (Linux ``VmHWM``) is
reset through ``/proc/self/clear_refs``, so "peak" is the high-water mark while opening the data
and iterating (imports excluded; "+" is that peak over the RSS before the data):

- ``stream``: ``MemmapBatches`` over ``open_prepared`` (positional reads, lazy chunk checks,
  one-batch prefetch): what ``ganforge train --data DATASET`` uses; ``stream:none`` without the
  chunk checks (their cost: every chunk hashed once, in the first batches);
- ``mmap``: the same batches fancy-indexed out of ``np.load(mmap_mode="r")`` (for contrast:
  touched pages of a mapping count in RSS);
- ``memory``: the whole array read into one tensor, then ``TensorBatches`` (today's path for
  data that fits in memory).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_data.py --sizes 10000 100000 --batches 300 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_prepared(out: Path, n: int, resolution: int = 64, channels: int = 3, classes: int = 10,
                       seed: int = 0) -> Path:
    """A prepared dataset of ``n`` random-noise images written straight into the memmap."""
    from ganforge.data import prepared as prep

    out.mkdir(parents=True, exist_ok=True)
    mm = np.lib.format.open_memmap(out / prep.IMAGES_FILE, mode="w+", dtype=np.uint8,
                                   shape=(n, channels, resolution, resolution))
    rng = np.random.default_rng(seed)
    step = 4096
    for a in range(0, n, step):
        b = min(n, a + step)
        mm[a:b] = rng.integers(0, 256, size=(b - a, channels, resolution, resolution), dtype=np.uint8)
    mm.flush()
    del mm
    labels = (np.arange(n) % classes).tolist()
    body = {"labels": labels, "class_names": [str(c) for c in range(classes)],
            "source": {"kind": "synthetic", "root": f"noise:{n}", "paths": [], "skipped": []}}
    prep.write_index(out, body, fingerprint=f"synthetic-{n}-{seed}", key=f"synthetic-{n}-{seed}",
                     options={"resolution": resolution, "channels": channels, "max_images": None})
    return out


def _status(field: str) -> int:
    """kB of a /proc/self/status field (Linux), -1 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _child(path: str, reader: str, batches: int, batch_size: int) -> dict:
    import torch

    from ganforge.data.prepared import open_prepared
    from ganforge.train.batches import MemmapBatches, TensorBatches

    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    base = _status("VmRSS")  # kB: torch and friends loaded, no data yet
    try:  # reset this process's peak RSS (VmHWM) to now, so the peak below is the data's alone
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    kind, _, verify = reader.partition(":")
    ds = open_prepared(path, verify=verify or "lazy")
    if kind == "stream":
        source = MemmapBatches(ds, ds.labels, batch_size, seed=0)
    elif kind == "mmap":
        arr = np.load(Path(path) / "images.npy", mmap_mode="r")

        class Mapped:
            def __len__(self):
                return len(arr)

            def read(self, idx):
                return np.ascontiguousarray(arr[np.sort(idx)][np.argsort(np.argsort(idx))])

        source = MemmapBatches(Mapped(), ds.labels, batch_size, seed=0, prefetch=False)
    elif kind == "memory":
        source = TensorBatches(torch.from_numpy(ds.read(np.arange(len(ds)))), ds.labels, batch_size, seed=0)
    else:
        raise SystemExit(f"unknown reader {reader}")
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    total = 0.0
    for k in range(batches):
        total += float(source.get(k, 0, 1, g, cpu)["image"][:, 0, 0, 0].sum())
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM")  # per address space: not inherited from the parent, unlike ru_maxrss
    return {"images": len(ds), "reader": reader, "batches": batches, "batch_size": batch_size,
            "dataset_mib": round(os.path.getsize(Path(path) / "images.npy") / 2**20, 1),
            "peak_rss_mib": round(peak / 1024, 1), "rss_before_data_mib": round(base / 1024, 1),
            "peak_minus_before_mib": round((peak - base) / 1024, 1),
            "rss_anon_end_mib": round(_status("RssAnon") / 1024, 1), "rss_file_end_mib": round(_status("RssFile") / 1024, 1),
            "batches_per_s": round(batches / seconds, 1), "checksum": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--readers", nargs="+", default=["stream", "stream:none", "mmap", "memory"],
                        help="stream[:lazy|none|all] (chunk checks), mmap, memory")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--workdir", default=None, help="where the synthetic datasets go (default: a temp dir)")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "READER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.batches, args.batch_size)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.sizes:
            t0 = time.perf_counter()
            path = synthetic_prepared(Path(tmp) / f"noise{n}", n, args.resolution)
            made = time.perf_counter() - t0
            for reader in args.readers:
                out = subprocess.run([sys.executable, __file__, "--child", str(path), reader, "--batches",
                                      str(args.batches), "--batch-size", str(args.batch_size)],
                                     check=True, capture_output=True, text=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["write_and_index_s"] = round(made, 1)
                rows.append(row)
                print(f"{n:>7} images  {row['dataset_mib']:>7.1f} MiB  {reader:<11}  peak RSS {row['peak_rss_mib']:>7.1f} MiB "
                      f"(+{row['peak_minus_before_mib']:>6.1f} over imports)  anon {row['rss_anon_end_mib']:>7.1f}  "
                      f"file {row['rss_file_end_mib']:>7.1f}  {row['batches_per_s']:>6.1f} batches/s", flush=True)
            (path / "images.npy").unlink()
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"rows": rows, "argv": sys.argv[1:]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

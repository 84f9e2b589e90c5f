"""Loading a 1024² FFHQ-shaped published StyleGAN2-ADA network and drawing one image on the CPU:
wall time per phase and peak RSS of the loading process.

    python benchmarks/bench_published.py [--threads 2] [--out results.json] [--keep FILE.pkl]

The network has FFHQ's official configuration (``ffhq.pkl``: z/w 512, 8 mapping layers, channel
base 32768, max 512, fp16 in the 4 highest resolutions, conv clamp 256, skip generator) with random
weights, written in the official pickle layout (``torch_utils.persistence`` records, as
tests/published_fixtures.py writes them) holding ``G`` and ``G_ema`` plus a ``D`` record of
29.0 M random parameters standing in for the discriminator (read and skipped by the loader, as
the real file's D is), so the file is about the size of the real one. The file is written by a first
process; a fresh second process loads it with ``ganforge.load_generator`` (restricted unpickler,
build, strict load of G and G_ema) and draws one image (psi 0.7, fp32), and reports its own peak
RSS (``ru_maxrss``), so writing does not count.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

FFHQ = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
            mapping_kwargs=dict(num_layers=8),
            synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
                                  architecture="skip"))
D_PARAMS = 29_000_000  # about the official 1024² discriminator's parameter count (a filler here)


def _stand_ins():
    """Modules named as in the official pickles, so pickle can write their globals."""
    tu, persistence = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    dn, util = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: ganforge answers with its own function
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    tu.persistence, dn.util = persistence, util
    sys.modules.update({"torch_utils": tu, "torch_utils.persistence": persistence, "dnnlib": dn, "dnnlib.util": util})
    return _reconstruct_persistent_obj, EasyDict


class _Record:
    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return self.fn, (self.meta,)


def _record(module, fn, easy, name, kwargs=None):
    state = {"training": False, "_parameters": collections.OrderedDict(module._parameters),
             "_buffers": collections.OrderedDict(module._buffers), "_non_persistent_buffers_set": set(),
             "_modules": collections.OrderedDict((k, _record(v, fn, easy, type(v).__name__))
                                                 for k, v in module._modules.items()),
             "_init_args": (), "_init_kwargs": easy(kwargs or {})}
    return _Record(fn, dict(type="class", version=6, module_src="# source (never run)\n", class_name=name,
                            state=state))


def write(path: Path) -> None:
    import torch

    from ganforge.published import OfficialGenerator

    fn, easy = _stand_ins()
    torch.manual_seed(0)
    kwargs = easy({k: easy(v) if isinstance(v, dict) else v for k, v in FFHQ.items()})
    G = OfficialGenerator(**FFHQ).eval()
    D = torch.nn.Module()
    D.register_parameter("filler", torch.nn.Parameter(torch.randn(D_PARAMS)))
    data = {"training_set_kwargs": easy(path="ffhq.zip"), "G": _record(G, fn, easy, "Generator", kwargs),
            "D": _record(D, fn, easy, "Discriminator"),
            "G_ema": _record(copy.deepcopy(G), fn, easy, "Generator", kwargs)}
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def load_and_draw(path: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    import ganforge

    gen = ganforge.load_generator(path)
    t1 = time.perf_counter()
    img = gen.sample(1, seed=0, truncation=0.7)
    t2 = time.perf_counter()
    img2 = gen.sample(1, seed=1, truncation=0.7)
    t3 = time.perf_counter()
    assert img.shape == img2.shape == (1, 3, 1024, 1024)
    return {"load_s": round(t1 - t0, 2), "first_image_s": round(t2 - t1, 2), "second_image_s": round(t3 - t2, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "params_G": sum(p.numel() for p in gen.G_ema.parameters()), "threads": threads,
            "torch": torch.__version__}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the pickle here and keep it")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(load_and_draw(args.child, args.threads)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "ffhq-shaped.pkl"
        if not path.exists():
            t = time.perf_counter()
            write(path)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        out = subprocess.run([sys.executable, __file__, "--child", str(path), "--threads", str(args.threads)],
                             env=env, capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["file_mb"] = round(path.stat().st_size / 1e6)
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), []) if Path("/proc/cpuinfo").exists() else []
    res["cpu_flags"] = [f for f in flags if f.startswith(("avx", "fma", "f16c", "amx"))]
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

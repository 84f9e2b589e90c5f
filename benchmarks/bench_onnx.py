"""onnxruntime vs PyTorch on the CPU, fp32, per model family: the same random-weight model, the same
input, each exported with :func:`ganforge.export.export_onnx` and run by onnxruntime
(CPUExecutionProvider) against the module's own forward under ``torch.inference_mode()``, both with
``--threads`` intra-op threads. Timings are the median (and minimum) of ``--repeats`` runs after
two warm-ups; ratio = torch median / onnxruntime median (> 1: onnxruntime is faster). The largest
absolute difference between the two outputs is reported too.

    python benchmarks/bench_onnx.py [--size 64] [--batch 4] [--repeats 7] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _models(size: int, batch: int):
    """(name, model, onnx graph module builder inputs) per family, random weights, eval mode."""
    from ganforge.export.onnx import onnx_graph
    from ganforge.generator import Generator
    from ganforge.nets import GanNetSpec, build_gan
    from ganforge.nets.adain_decoder import AdaINDecoder
    from ganforge.nets.rrdb import RRDBNet
    from ganforge.nets.translators import ResnetGenerator, UnetGenerator
    from ganforge.nets.vgg import VGGEncoder
    from ganforge.restore.inpaint import Inpainter
    from ganforge.translate.apply import Translator

    torch.manual_seed(0)
    out = []
    for arch in ("dcgan", "stylegan2"):
        spec = GanNetSpec(resolution=size, channels=3, z_dim=128, num_classes=0, width=32)
        G, _ = build_gan(arch, spec)
        out.append((f"generator {arch} {size}²", Generator(G, G, spec, [], 0, Path("random"), arch=arch), {}))
    net = ResnetGenerator(3, 3, ngf=32, n_blocks=6, norm="instance").eval()
    out.append((f"translator resnet-6 {size}²", Translator(net, 3, 3, net.multiple), {"size": size}))
    out.append((f"upscaler rrdb nf32 nb4 ×4 {size // 2}²", RRDBNet(3, 3, nf=32, nb=4, gc=16, scale=4).eval(),
                {"size": size // 2}))
    unet = UnetGenerator(4, 3, num_downs=5, ngf=32, norm="instance").eval()
    out.append((f"inpainter unet-5 {size}²", Inpainter(unet, channels=3, multiple=32), {"size": size}))
    decoder = AdaINDecoder("relu4_1").eval()
    out.append((f"adain encoder+decoder relu4_1 {size}²", decoder, {"encoder": VGGEncoder("adain", "none"),
                                                                     "size": size}))
    rows = []
    for name, model, kw in out:
        module, inputs, names, *_ = onnx_graph(model, **kw)
        feeds = _batch_inputs(inputs, names, batch)
        rows.append((name, model, kw, module, feeds))
    return rows


def _batch_inputs(inputs, names, batch: int) -> dict[str, torch.Tensor]:
    feeds = {}
    for name, x in zip(names, inputs):
        if name in ("truncation_psi", "alpha"):
            feeds[name] = x
        else:
            feeds[name] = x[:1].expand(batch, *x.shape[1:]).clone() if x.dim() else x
            if x.is_floating_point() and name != "mask":
                feeds[name] = torch.rand_like(feeds[name]) if name != "z" else torch.randn_like(feeds[name])
    return feeds


def _time(fn, repeats: int) -> list[float]:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    import onnxruntime as ort

    from ganforge.export import export_onnx

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64, help="image side (the upscaler gets half)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, model, kw, module, feeds) in enumerate(_models(args.size, args.batch)):
            path = Path(tmp) / f"m{i}.onnx"
            export_onnx(model, path, **({"encoder": kw["encoder"]} if "encoder" in kw else {}))
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            np_feeds = {k: v.numpy() for k, v in feeds.items()}
            with torch.inference_mode():
                ref = module(*feeds.values())
                t_torch = _time(lambda: module(*feeds.values()), args.repeats)
            got = session.run(None, np_feeds)[0]
            t_ort = _time(lambda: session.run(None, np_feeds), args.repeats)
            row = {"model": name, "batch": args.batch, "torch_median_s": statistics.median(t_torch),
                   "torch_min_s": min(t_torch), "ort_median_s": statistics.median(t_ort), "ort_min_s": min(t_ort),
                   "ratio_median": statistics.median(t_torch) / statistics.median(t_ort),
                   "max_abs_diff": float(np.abs(got - ref.numpy()).max())}
            results.append(row)
            print(f"{name:36s} torch {row['torch_median_s'] * 1e3:8.1f} ms  onnxruntime {row['ort_median_s'] * 1e3:8.1f} ms"
                  f"  ratio {row['ratio_median']:5.2f}  max|diff| {row['max_abs_diff']:.1e}", flush=True)
    summary = {"torch": torch.__version__, "onnxruntime": ort.__version__, "threads": args.threads,
               "size": args.size, "batch": args.batch, "repeats": args.repeats, "machine": platform.machine(),
               "results": results}
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

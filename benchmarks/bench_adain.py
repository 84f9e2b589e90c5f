"""AdaIN at 512²: ganforge's Stylizer (style statistics cached, optional bf16) against a plain
reference loop over the *same* networks in the pytorch-AdaIN manner (fp32, style re-encoded on
every call), in one run. Random weights in the official layout: timing does not depend on values.

    python benchmarks/bench_adain.py [--size 512] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def he_init(*modules: torch.nn.Module) -> None:
    """He-normal convolution weights and zero biases (random weights whose signal survives depth)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                torch.nn.init.zeros_(m.bias)


def scale_output(decoder: torch.nn.Sequential, features: torch.Tensor) -> None:
    """Scale the decoder's last conv so its output on ``features`` has std 0.12 around 0.5: a
    textured image in [0, 1], not a saturated one."""
    probe = decoder(features)
    decoder[-1].weight.mul_(0.12 / probe.std())
    decoder[-1].bias.fill_(0.5)


def reference_stylize(vgg: torch.nn.Sequential, decoder: torch.nn.Module, content: torch.Tensor,
                      style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """What pytorch-AdaIN's test.py does per image: encode both, AdaIN, decode (fp32)."""
    def stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c = f.shape[:2]
        var = f.view(n, c, -1).var(dim=2) + 1e-5
        return f.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)

    with torch.no_grad():
        fc, fs = vgg(content), vgg(style)
        (mc, sc), (ms, ss) = stats(fc), stats(fs)
        t = (fc - mc) / sc * ss + ms
        return decoder(alpha * t + (1 - alpha) * fc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=0, help="batched throughput batch size (0: 4 on CPU, 64 on GPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ganforge.nets.adain_decoder import AdaINDecoder
    from ganforge.nets.vgg import VGGEncoder
    from ganforge.style import Stylizer

    torch.manual_seed(0)
    enc, dec = VGGEncoder("adain", "none"), AdaINDecoder()
    he_init(enc, dec)  # signal survives, so the bf16 deviation below is measured on real outputs
    with torch.no_grad():
        scale_output(dec, enc.encode(torch.rand(1, 3, 64, 64)))
    tmp = Path(tempfile.mkdtemp())
    torch.save(enc.file_state(), tmp / "vgg_normalised.pth")
    torch.save(dec.state_dict(), tmp / "decoder.pth")
    device = torch.device(args.device)
    vgg_ref = torch.nn.Sequential(*list(enc.features)[:31]).to(device).eval()  # up to relu4_1
    dec_ref = dec.to(device).eval()
    contents = [torch.rand(1, 3, args.size, args.size, device=device) for _ in range(args.repeats)]
    style = torch.rand(1, 3, args.size, args.size, device=device)

    def timed(fn) -> float:
        fn(contents[0])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for c in contents:
            fn(c)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / len(contents)

    results = {"size": args.size, "repeats": args.repeats, "device": str(device), "threads": args.threads,
               "load_avg": os.getloadavg()[0]}
    results["reference_fp32_s"] = timed(lambda c: reference_stylize(vgg_ref, dec_ref, c, style))
    for precision in ("fp32", "bf16"):
        st = Stylizer("adain", encoder=str(tmp / "vgg_normalised.pth"), decoder=str(tmp / "decoder.pth"),
                      precision=precision, device=device, style_size=args.size)
        results[f"ganforge_{precision}_s"] = timed(lambda c: st.stylize_tensor(c, style))
        results[f"ratio_{precision}"] = results[f"ganforge_{precision}_s"] / results["reference_fp32_s"]
    # bf16 quality: the same image through fp32 and bf16 paths
    outs = {}
    for precision in ("fp32", "bf16"):
        st = Stylizer("adain", encoder=str(tmp / "vgg_normalised.pth"), decoder=str(tmp / "decoder.pth"),
                      precision=precision, device=device, style_size=args.size)
        outs[precision] = st.stylize_tensor(contents[0], style)
    results["bf16_vs_fp32_mean_abs"] = float((outs["bf16"] - outs["fp32"]).abs().mean())
    results["output_std"] = float(outs["fp32"].std())
    # batched throughput (one style, cached): images per second
    batch = args.batch or (64 if device.type == "cuda" else 4)
    x = torch.rand(batch, 3, args.size, args.size, device=device)
    for precision in ("fp32", "bf16"):
        st = Stylizer("adain", encoder=str(tmp / "vgg_normalised.pth"), decoder=str(tmp / "decoder.pth"),
                      precision=precision, device=device, style_size=args.size)
        st.stylize_batch(x[:2], style)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        st.stylize_batch(x, style)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[f"batched_{precision}_img_per_s"] = batch / (time.perf_counter() - start)
    results["batch"] = batch
    results["reference_again_s"] = timed(lambda c: reference_stylize(vgg_ref, dec_ref, c, style))  # drift check
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}, indent=2))
    print(f"ganforge/reference time ratio: fp32 {results['ratio_fp32']:.2f}x, bf16 {results['ratio_bf16']:.2f}x "
          f"(goal <= 0.7x)")


if __name__ == "__main__":
    main()

"""Video style transfer on CPU: frames/s at the clip's size (cutBunny: 640×360) for per-frame and
temporal modes, peak RSS of a 240-frame vs a 24-frame clip (streaming: they should be about
equal), and the warping error E_warp (k=1, k=10) of temporal vs per-frame output with the mean
per-frame style distance, so that steadiness is not bought by dropping the style.

The AdaIN decoder is a real one, trained here first by ``ganforge train-style`` (short run, encoder
``vgg19-caffe``: the offline VGG19 in GANFORGE_WEIGHTS_DIR) on the shared content photos and the
style image; never random weights. Every step is the installed ``ganforge`` command in a
subprocess, so each run's peak RSS is its own (``os.wait4``).

    GANFORGE_WEIGHTS_DIR=../shared/assets/weights python benchmarks/bench_video.py \
        [--video ../shared/assets/video/cutBunny.mp4] [--train-steps 400] [--threads 2] [--out bench-video] \
        [--frames 48] [--rss-max-size 128] [--decoder RUN/decoder.safetensors]
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

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "assets"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB) of that process alone."""
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--video", default=str(SHARED / "video" / "cutBunny.mp4"))
    p.add_argument("--style", default=str(SHARED / "images" / "style" / "starry_night.jpg"))
    p.add_argument("--content", default=str(SHARED / "images" / "content"), help="photos for train-style")
    p.add_argument("--decoder", help="an AdaIN decoder for vgg19-caffe (default: train one here); speed mode: "
                                     "'random' for He-initialised weights (timing only)")
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strength", type=float, default=0.7, help="temporal strength (default 0.7, the CLI default)")
    p.add_argument("--contrast", default="restore", choices=["restore", "none"],
                   help="--temporal-contrast of the temporal run (default restore, the CLI default)")
    p.add_argument("--frames", type=int, default=0,
                   help="frames of the clip for the fps and E_warp runs (0: all); a shorter cut is re-encoded once (crf 18)")
    p.add_argument("--rss-max-size", type=int, default=0,
                   help="process the RSS runs (whole clip vs its first 24 frames) at this long side (0: full size); "
                        "the output keeps the clip's size either way")
    p.add_argument("--out", default="bench-video")
    p.add_argument("--speed-frames", type=int, default=0,
                   help="only the speed comparison: per-frame vs temporal, fp32 vs --precision, on the first N frames, "
                        "in one process, interleaved; needs --decoder")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="precision of the stylisation runs (default auto: bf16 only on a CPU with native bf16)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per network pass")
    p.add_argument("--device", default="cpu", help="speed mode: cpu, cuda (the network's device; flow stays on the CPU)")
    p.add_argument("--rounds", type=int, default=2, help="speed mode: rounds of the interleaved runs")
    p.add_argument("--one-pass", action="store_true",
                   help="only E_warp and style distance, per-frame vs temporal, from ONE network pass over the clip "
                        "(the same per-frame frames feed both outputs: half the CPU time, an exact A/B); needs --decoder")
    p.add_argument("--sweep", help="with --one-pass: several temporal settings from the same pass, "
                                   "e.g. 0.4:none,0.6:none,0.7:restore (STRENGTH:CONTRAST)")
    args = p.parse_args()
    if args.speed_frames:
        return speed(args)
    if args.one_pass:
        return one_pass(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("ganforge") or str(Path(sys.executable).with_name("ganforge"))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.setdefault("GANFORGE_WEIGHTS_DIR", str(SHARED / "weights"))
    env.setdefault("GANFORGE_OFFLINE", "1")
    results: dict = {"video": args.video, "style": args.style, "threads": args.threads, "cpu": os.cpu_count()}

    # 1. a real decoder: ganforge train-style, short run (resumes if the folder exists)
    decoder = args.decoder
    if decoder is None:
        styles = out / "style-dir"
        styles.mkdir(exist_ok=True)
        shutil.copy(args.style, styles / Path(args.style).name)
        wall, _ = run([exe, "train-style", "--content", args.content, "--style", str(styles), "--encoder", "vgg19-caffe",
                       "--steps", str(args.train_steps), "--batch-size", "4", "--crop", "128", "--load-size", "256",
                       "--lr", "5e-4", "--sample-every", "0", "--ckpt-every", "100", "--quiet",
                       "--out", str(out / "decoder-run")], env)
        decoder = str(out / "decoder-run" / "decoder.safetensors")
        done = json.loads((out / "decoder-run" / "summary.json").read_text())  # steps actually run (Ctrl-C stops early)
        results["decoder_training"] = {"steps": done["steps"], "batch": 4, "crop": 128, "lr": 5e-4,
                                       "precision": done.get("precision"), "encoder": "vgg19-caffe",
                                       "seconds": round(wall, 1)}
    results["decoder"] = decoder

    # 2. a 24-frame cut of the same clip (same size and codec settings)
    sys.path.insert(0, str(REPO / "src"))
    from ganforge.video.io import VideoWriter, iter_frames, probe

    info = probe(args.video)
    results["clip"] = info.to_dict()
    def cut(n: int) -> str:
        if not n or n >= info.frames:
            return args.video
        path = out / f"clip{n}.mp4"
        if not path.exists():
            with VideoWriter(path, info.fps) as w:
                for i, f in enumerate(iter_frames(args.video)):
                    if i == n:
                        break
                    w.write(f)
        return str(path)

    clip, short = cut(args.frames), cut(24)
    results["frames_measured"] = probe(clip).frames

    # 3. stylise: per-frame and temporal on the whole clip, per-frame on the 24-frame cut
    base = ["stylize-video", "--style", args.style, "--encoder", "vgg19-caffe", "--decoder", decoder,
            "--precision", args.precision, "--device", "cpu", "--batch-size", str(args.batch_size), "--quiet", "--resume", "never"]
    small = ["--max-size", str(args.rss_max_size)] if args.rss_max_size else []
    runs = {"per_frame": (clip, 0.0, []), "temporal": (clip, args.strength, []),
            "rss_all_frames": (args.video, 0.0, small), "rss_24_frames": (short, 0.0, small)}
    results["rss_max_size"] = args.rss_max_size or None
    for name, (video, strength, extra) in runs.items():
        target = out / f"{name}.mp4"
        wall, rss = run([exe, *base, *extra, video, "--temporal-strength", str(strength),
                         "--temporal-contrast", args.contrast, "--out", str(target),
                         "--json", str(out / f"{name}.json")], env)
        s = json.loads((out / f"{name}.json").read_text())
        results[name] = {"frames": s["frames"], "temporal_strength": strength,
                         "temporal_contrast": args.contrast if strength else None, "wall_s": round(wall, 1),
                         "fps_end_to_end": round(s["frames"] / wall, 3), "fps_processing": s["processing_fps"],
                         "peak_rss_mib": round(rss, 1), "trusted_fraction": s.get("trusted_fraction")}

    # 4. flicker and style distance (flow on the original)
    for name in ("per_frame", "temporal"):
        run([exe, "eval-video", clip, str(out / f"{name}.mp4"), "--style", args.style,
             "--json", str(out / f"{name}_eval.json")], env)
        e = json.loads((out / f"{name}_eval.json").read_text())
        results[name].update({k: e[k] for k in ("E_warp_k1", "E_warp_k10", "style_distance", "style_distance_kind")})
    results["formula"], results["scale"] = e["formula"], e["scale"]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{'run':<16}{'frames':>7}{'fps(proc)':>10}{'fps(e2e)':>9}{'RSS MiB':>9}{'E_warp k1':>11}{'E_warp k10':>11}{'style d':>12}")
    for name in ("per_frame", "temporal", "rss_all_frames", "rss_24_frames"):
        r = results[name]
        ew = f"{r['E_warp_k1']:.5f}" if "E_warp_k1" in r else "-"
        ew10 = f"{r['E_warp_k10']:.5f}" if "E_warp_k10" in r else "-"
        sd = f"{r['style_distance']:.4f}" if "style_distance" in r else "-"
        print(f"{name:<16}{r['frames']:>7}{r['fps_processing']:>10}{r['fps_end_to_end']:>9}{r['peak_rss_mib']:>9}{ew:>11}{ew10:>11}{sd:>12}")
    print(f"wrote {out / 'results.json'}")


def cpu_flags() -> str:
    """The CPU model and the flags that decide precision auto (bf16 only with native bf16)."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores; " + " ".join(f for f in wanted if f in flags)


def random_decoder():
    """``--decoder random`` (speed mode only): He-initialised weights of the official decoder
    architecture, output scaled to a visible range (bench_adain's helpers). Frames/s does not
    depend on the values."""
    import torch

    sys.path.insert(0, str(REPO / "src"))
    from bench_adain import he_init, scale_output
    from ganforge.nets.adain_decoder import AdaINDecoder

    torch.manual_seed(0)
    dec = AdaINDecoder()
    he_init(dec)
    with torch.no_grad():
        scale_output(dec, torch.rand(1, 512, 8, 8))
    return dec


def speed(args: argparse.Namespace) -> None:
    """frames/s of the whole path (decode, network, flow + blend, chunk files, encode) for per-frame
    and temporal modes at fp32 and at ``--precision`` (default auto) in one process, interleaved
    (fp32 A, auto A, fp32 B, auto B, twice) so that a change in machine load hits all alike; plus
    how far the auto (bf16) output is from fp32 on [0, 255]."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "src"))
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GANFORGE_WEIGHTS_DIR", str(SHARED / "weights"))
    from ganforge.style import Stylizer
    from ganforge.video.io import VideoWriter, iter_frames, probe
    from ganforge.video.pipeline import _run_op, process_video
    from ganforge.video.stylize import stylizer_op

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = probe(args.video)
    clip = out / f"speed{args.speed_frames}.mp4"
    frames = []
    with VideoWriter(clip, info.fps) as w:
        for i, f in enumerate(iter_frames(args.video)):
            if i == args.speed_frames:
                break
            w.write(f)
            frames.append(f)
    print(f"CPU: {cpu_flags()}; torch {torch.__version__}, {args.threads} threads", flush=True)
    if args.device != "cpu":
        print(f"device: {args.device} ({torch.cuda.get_device_name()})", flush=True)
    precisions = ["fp32"] if args.precision == "fp32" else ["fp32", args.precision]
    decoder = random_decoder() if args.decoder == "random" else args.decoder
    ops, resolved = {}, {}
    for p in precisions:
        st = Stylizer("adain", encoder="vgg19-caffe", decoder=decoder, precision=p, device=args.device)
        resolved[p] = st.precision
        ops[p] = stylizer_op(st, [(args.style, 1.0)])
        ops[p](torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255)  # load weights, style cache, warm up
    print("precision:", ", ".join(f"{p} -> {r}" for p, r in resolved.items()), flush=True)
    if len(precisions) == 2:  # output difference, first batch of frames, on [0, 255]
        a, b = (np.stack(_run_op(ops[p], frames[:args.batch_size], args.batch_size)) for p in precisions)
        d = np.abs(a - b) * 255
        print(f"{precisions[1]} ({resolved[precisions[1]]}) vs fp32 output on [0, 255], {len(a)} frames: "
              f"max abs diff {d.max():.2f}, mean abs diff {d.mean():.3f}, 99th percentile {np.percentile(d, 99):.2f}",
              flush=True)
    times: dict[tuple[str, float], list[float]] = {}
    cpu_fps: dict[tuple[str, float], list[float]] = {}
    loads = []
    for _ in range(args.rounds):
        for strength in (0.0, args.strength):
            for p in precisions:
                loads.append(os.getloadavg()[0])
                t, c = time.perf_counter(), time.process_time()
                process_video(clip, out / "speed_out.mp4", ops[p], temporal_strength=strength, progress=False,
                              resume=False, batch_size=args.batch_size, temporal_contrast=args.contrast)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                times.setdefault((p, strength), []).append(args.speed_frames / wall)
                # CPU seconds of this process (all threads): what the run costs whatever the load;
                # threads x frames / CPU-s is the rate if the cores were this process's alone
                cpu_fps.setdefault((p, strength), []).append(args.threads * args.speed_frames / cpu)
                print(f"  {p:>5} ({resolved[p]}) temporal_strength {strength}: {times[(p, strength)][-1]:.3f} frames/s "
                      f"wall, {cpu / args.speed_frames:.2f} CPU-s/frame -> {cpu_fps[(p, strength)][-1]:.3f} frames/s "
                      f"on {args.threads} free cores (load average {loads[-1]:.2f})", flush=True)
    print(f"\n{info.width}x{info.height}, {args.speed_frames} frames, batch {args.batch_size}, {args.threads} threads, "
          f"load average during the runs {min(loads):.1f}-{max(loads):.1f}")
    for strength in (0.0, args.strength):
        row = {p: times[(p, strength)] for p in precisions}
        text = "; ".join(f"{p} ({resolved[p]}) {', '.join(f'{v:.3f}' for v in row[p])} frames/s" for p in precisions)
        if len(precisions) == 2:
            ratio = np.median(row[precisions[1]]) / np.median(row["fp32"])
            text += f"; {precisions[1]}/fp32 = {ratio:.2f}x"
        crow = {p: cpu_fps[(p, strength)] for p in precisions}
        text += "\n" + " " * 15 + "by CPU time: " + "; ".join(
            f"{p} {', '.join(f'{v:.3f}' for v in crow[p])} frames/s on {args.threads} free cores" for p in precisions)
        if len(precisions) == 2:
            text += f"; {precisions[1]}/fp32 = {np.median(crow[precisions[1]]) / np.median(crow['fp32']):.2f}x"
        print(f"{'per-frame' if strength == 0 else f'temporal {strength}':<14} {text}")


def one_pass(args: argparse.Namespace) -> None:
    """Per-frame output and temporal outputs (``--strength``/``--contrast``, or every
    STRENGTH:CONTRAST of ``--sweep``) of the first ``--frames`` frames (0: all) from ONE network
    pass: the same per-frame frames feed every blend, so the comparison is exact and the network
    runs once. Each output is encoded like ``stylize-video`` does (H.264 crf 18), then measured as
    ``eval-video`` does: E_warp (k=1, 10) against the original's flow, and the style distance."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "src"))
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GANFORGE_WEIGHTS_DIR", str(SHARED / "weights"))
    from ganforge.style import Stylizer
    from ganforge.video.io import VideoWriter, iter_frames, probe
    from ganforge.video.metrics import style_distance, warping_error
    from ganforge.video.pipeline import _run_op
    from ganforge.video.stylize import stylizer_op
    from ganforge.video.temporal import TemporalBlender

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = probe(args.video)
    n = min(args.frames or info.frames, info.frames)
    video = args.video
    if n < info.frames:  # eval-video compares whole clips: cut the original too
        video = str(out / f"clip{n}.mp4")
        with VideoWriter(video, info.fps) as w:
            for i, f in enumerate(iter_frames(args.video)):
                if i == n:
                    break
                w.write(f)
    settings = [(float(a), b) for a, b in (x.split(":") for x in args.sweep.split(","))] if args.sweep else \
        [(args.strength, args.contrast)]
    st = Stylizer("adain", encoder="vgg19-caffe", decoder=args.decoder, precision=args.precision)
    op = stylizer_op(st, [(args.style, 1.0)])
    blenders = {"per_frame": None, **{f"s{s}_{c}": TemporalBlender(s, "dis", c) for s, c in settings}}
    paths = {name: out / f"onepass{n}_{name}.mp4" for name in blenders}
    writers = {name: VideoWriter(path, info.fps) for name, path in paths.items()}
    t0, buffer, done = time.perf_counter(), [], 0

    def to8(x):
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)

    def flush():
        nonlocal done
        for src, styl in zip(buffer, _run_op(op, buffer, args.batch_size)):
            for name, b in blenders.items():
                writers[name].write(to8(styl if b is None else b(src, styl)))
        done += len(buffer)
        buffer.clear()
        print(f"  {done}/{n} frames, {done / (time.perf_counter() - t0):.3f} frames/s (all blends), "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)

    for f in iter_frames(video):
        buffer.append(f)
        if len(buffer) == 24:
            flush()
    if buffer:
        flush()
    for w in writers.values():
        w.close()
    results = {"video": args.video, "frames": n, "precision": st.precision, "decoder": args.decoder,
               "seconds_stylise": round(time.perf_counter() - t0, 1), "runs": {}}
    for name, path in paths.items():
        e = warping_error(video, path, (1, 10))
        e.update(style_distance(path, args.style, encoder="vgg19-caffe"))
        r = results["runs"][name] = {k: e[k] for k in ("E_warp_k1", "E_warp_k10", "style_distance")}
        if blenders[name] is not None:
            r["trusted_fraction"] = round(float(np.mean(blenders[name].trusted)), 4)
        base = results["runs"]["per_frame"]
        print(f"{name:<18} E_warp k=1 {r['E_warp_k1']:.5f} ({r['E_warp_k1'] / base['E_warp_k1']:.3f}x)  "
              f"k=10 {r['E_warp_k10'] or float('nan'):.5f} ({(r['E_warp_k10'] or float('nan')) / (base['E_warp_k10'] or float('nan')):.3f}x)  "
              f"style distance {r['style_distance']:.4g} ({100 * (r['style_distance'] / base['style_distance'] - 1):+.1f} %)",
              flush=True)
    results["style_distance_kind"], results["formula"], results["scale"] = e["style_distance_kind"], e["formula"], e["scale"]
    (out / f"onepass{n}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / f'onepass{n}.json'}")


if __name__ == "__main__":
    main()

"""Load figure for ``ganforge serve``: requests/s and p50/p95 latency of POST /v1/stylize (256² content,
one style) with N concurrent clients on loopback, and the server's RSS before/after the run.

Starts ``ganforge serve`` in a subprocess on a free loopback port, warms it up (models loaded, style
statistics cached), reads the server's RSS, sends ``--requests`` requests from ``--clients``
threads (each a keep-alive httpx client), reads the RSS again, stops the server.

    python benchmarks/bench_serve.py --clients 4 --requests 1000 --encoder vgg19-caffe --decoder random
    python benchmarks/bench_serve.py --encoder random --decoder random       # no weights at all

``--robustness`` measures what issue 22 asked for instead of throughput: the server's RSS when idle
(after a warm-up with the same request) and after ``--requests`` (default 20 here) stylise requests
whose content and four styles are a few-KB single-colour PNG of ``--canvas``² pixels (4000: a big
decode, a tiny upload), and the worst ``/healthz`` latency while ``--clients`` (8) such uploads are
in flight at once:

    python benchmarks/bench_serve.py --robustness --encoder random --decoder random

``--encoder random`` / ``--decoder random`` write random networks in the official layouts into a
temporary folder (same architecture, so the same compute; the images are meaningless). With
``--method gatys`` use ``--iterations`` (few: Gatys optimises per request).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image


HEADERS: dict[str, str] = {}  # Authorization when --api-key is on


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _image(seed: int, size: int, fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(0, 255, (size // 16, size // 16, 3), dtype=np.uint8))
    buf = io.BytesIO()
    low.resize((size, size), Image.BICUBIC).save(buf, format=fmt)
    return buf.getvalue()


def _random_weights(folder: Path, encoder: str, decoder: str) -> tuple[str, str]:
    import torch

    from ganforge.nets.adain_decoder import AdaINDecoder, save_decoder
    from ganforge.nets.vgg import VGGEncoder

    torch.manual_seed(0)
    if encoder == "random":
        enc = VGGEncoder("adain", "none")
        torch.save(enc.file_state(), folder / "vgg_normalised.pth")
        encoder = str(folder / "vgg_normalised.pth")
    if decoder == "random":
        dec = AdaINDecoder()
        save_decoder(dec, folder / "decoder.safetensors", encoder=encoder if not Path(encoder).suffix else "")
        decoder = str(folder / "decoder.safetensors")
    return encoder, decoder


def _flat_png(side: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _robustness(url: str, pid: int, args: argparse.Namespace) -> dict:
    """Issue 22's reproductions made into numbers: RSS idle (after warm-up) vs after ``args.requests``
    big-canvas stylise requests (content + four styles), and /healthz latency while ``args.clients``
    such uploads are decoded at once (each sample: one GET /healthz, sampled every 20 ms)."""
    import httpx

    content = _flat_png(args.canvas, (200, 120, 40))
    styles = [_flat_png(args.canvas, (40 * i, 200 - 30 * i, 90)) for i in range(1, 5)]
    files = [("content", ("c.png", content, "image/png"))] + [("style", (f"s{i}.png", s, "image/png"))
                                                              for i, s in enumerate(styles)]
    data = {"method": args.method, "max_size": str(args.size)}

    def post(c: httpx.Client) -> int:
        return c.post(url + "/v1/stylize", files=files, data=data, timeout=600).status_code

    with httpx.Client(headers=HEADERS) as c:
        for _ in range(max(1, args.warmup // 4)):
            if post(c) != 200:
                sys.exit("warm-up request failed")
    time.sleep(1.0)
    rss_idle = _rss_mb(pid)
    codes: dict[int, int] = {}
    peak = [rss_idle]
    t0 = time.perf_counter()
    with httpx.Client(headers=HEADERS) as c:
        for _ in range(args.requests):
            code = post(c)
            codes[code] = codes.get(code, 0) + 1
            peak[0] = max(peak[0], _rss_mb(pid))
    wall = time.perf_counter() - t0
    time.sleep(1.0)
    rss_after = _rss_mb(pid)

    # /healthz while N uploads of the same request are decoded at once
    with httpx.Client(headers=HEADERS) as c:
        idle_lat = []
        for _ in range(10):
            t = time.perf_counter()
            c.get(url + "/healthz", timeout=60)
            idle_lat.append(time.perf_counter() - t)
    stop = threading.Event()
    busy_lat: list[float] = []

    def prober() -> None:
        with httpx.Client(headers=HEADERS) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    c.get(url + "/healthz", timeout=120)
                except httpx.HTTPError:  # counted as the time it took to give up
                    pass
                busy_lat.append(time.perf_counter() - t)
                time.sleep(0.02)

    def uploader(out: list) -> None:
        with httpx.Client(headers=HEADERS) as c:
            out.append(post(c))

    upload_codes: list[int] = []
    probe = threading.Thread(target=prober)
    probe.start()
    ups = [threading.Thread(target=uploader, args=(upload_codes,)) for _ in range(args.clients)]
    for t in ups:
        t.start()
    for t in ups:
        t.join()
    stop.set()
    probe.join()
    return {"scenario": "robustness", "canvas": args.canvas, "png_bytes": len(content), "method": args.method,
            "max_size": args.size, "requests": args.requests, "status_codes": codes, "wall_s": round(wall, 2),
            "rss_mb_idle": round(rss_idle, 1), "rss_mb_after": round(rss_after, 1),
            "rss_mb_peak_sampled": round(peak[0], 1), "rss_growth_pct": round(100 * (rss_after / rss_idle - 1), 1),
            "concurrent_uploads": args.clients, "upload_codes": sorted(upload_codes),
            "healthz_idle_max_s": round(max(idle_lat), 4),
            "healthz_busy_max_s": round(max(busy_lat), 4) if busy_lat else None,
            "healthz_busy_p50_s": round(statistics.median(busy_lat), 4) if busy_lat else None,
            "healthz_busy_samples": len(busy_lat), "cpu_count": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="content and style side (px)")
    ap.add_argument("--method", default="adain", choices=["adain", "wct", "gatys"])
    ap.add_argument("--iterations", type=int, help="gatys iterations per request")
    ap.add_argument("--encoder", default="vgg19-caffe", help="name, path, or 'random'")
    ap.add_argument("--decoder", default="random", help="name, path, or 'random' (adain/wct)")
    ap.add_argument("--workers", type=int, default=1, help="server model workers")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="server --precision")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the server (0: leave)")
    ap.add_argument("--json", dest="json_path", metavar="PATH")
    ap.add_argument("--api-key", action="store_true",
                    help="start the server with an API key (GANFORGE_API_KEY) and send it as a bearer token")
    ap.add_argument("--robustness", action="store_true",
                    help="RSS idle vs after big-canvas requests, and /healthz latency under concurrent decodes")
    ap.add_argument("--canvas", type=int, default=4000, help="--robustness: side of the single-colour PNG")
    args = ap.parse_args()
    if args.robustness and "--requests" not in sys.argv:
        args.requests = 20
    if args.robustness and "--clients" not in sys.argv:
        args.clients = 8
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    encoder, decoder = _random_weights(tmp, args.encoder, args.decoder if args.method != "gatys" else "")
    port = _free_port()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    if args.api_key:
        import secrets

        env["GANFORGE_API_KEY"] = secrets.token_urlsafe(32)
        HEADERS["Authorization"] = f"Bearer {env['GANFORGE_API_KEY']}"
    cmd = [sys.executable, "-m", "ganforge", "serve", "--port", str(port), "--quiet", "--encoder", encoder,
           "--workers", str(args.workers), "--precision", args.precision, "--queue-size", str(max(16, 2 * args.clients)), "--timeout", "600"]
    if args.method != "gatys":
        cmd += ["--decoder", decoder]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"server exited: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.25)
        if args.robustness:
            result = _robustness(url, server.pid, args)
            print(json.dumps(result, indent=2))
            if args.json_path:
                Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
            return
        content, style = _image(1, args.size, "PNG"), _image(2, args.size, "JPEG")
        data = {"method": args.method, "max_size": str(args.size)}
        if args.iterations:
            data["iterations"] = str(args.iterations)
        files = [("content", ("c.png", content, "image/png")), ("style", ("s.jpg", style, "image/jpeg"))]

        def post(client: httpx.Client) -> tuple[int, float]:
            t0 = time.perf_counter()
            r = client.post(url + "/v1/stylize", files=files, data=data, timeout=600)
            return r.status_code, time.perf_counter() - t0

        with httpx.Client(headers=HEADERS) as c:
            for _ in range(args.warmup):
                code, _ = post(c)
                if code != 200:
                    sys.exit(f"warm-up request failed: {code}")
        rss_before = _rss_mb(server.pid)
        latencies: list[float] = []
        codes: dict[int, int] = {}
        lock = threading.Lock()
        counter = iter(range(args.requests))

        def client_loop() -> None:
            with httpx.Client(headers=HEADERS) as c:
                while True:
                    with lock:
                        if next(counter, None) is None:
                            return
                    code, dt = post(c)
                    with lock:
                        codes[code] = codes.get(code, 0) + 1
                        if code == 200:
                            latencies.append(dt)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_after = _rss_mb(server.pid)
        health = json.loads(urllib.request.urlopen(urllib.request.Request(url + "/healthz", headers=HEADERS)).read())
    finally:
        server.terminate()
        server.wait(10)
    q = np.percentile(latencies, [50, 95]) if latencies else [float("nan")] * 2
    result = {"method": args.method, "size": args.size, "clients": args.clients, "requests": args.requests,
              "status_codes": codes, "wall_s": round(wall, 2), "requests_per_s": round(codes.get(200, 0) / wall, 3),
              "p50_ms": round(float(q[0]) * 1000, 1), "p95_ms": round(float(q[1]) * 1000, 1),
              "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
              "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1),
              "encoder": args.encoder, "decoder": args.decoder if args.method != "gatys" else None,
              "server_precision": health["precision"], "server_device": health["device"],
              "cpu_count": os.cpu_count(), "server_threads": args.threads or "default", "api_key": args.api_key}
    print(json.dumps(result, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

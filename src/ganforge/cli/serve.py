"""``ganforge serve``: the REST API and web page (:mod:`ganforge.server`) under uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import sys
from pathlib import Path

from ..errors import GanforgeError
from ._common import add_network_options, add_quiet

MIN_KEY_CHARS = 16


def is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_rate(text: str) -> float:
    """``20``, ``20/s``, ``600/min`` → requests per second; ``0`` turns the limit off."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", text or "")
    if not m:
        raise GanforgeError(f"--rate-limit takes N/s or N/min (0 = off), got {text!r}")
    rate = float(m.group(1))
    return rate / 60.0 if (m.group(2) or "s").startswith("m") else rate


def allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...]:
    """Host names clients may use: loopback names, the bound host (a wildcard address adds this
    machine's name), and ``--allowed-host`` values (``*`` = any)."""
    from ..server.config import LOOPBACK_HOSTS

    names = list(LOOPBACK_HOSTS)
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        names += [socket.gethostname(), socket.getfqdn()]
    else:
        names.append(host)
    return tuple(dict.fromkeys(n for n in names + list(extra) if n))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web page and REST API for style transfer and sampling",
                       description="Serve a web page (/) and a JSON/HTTP API (OpenAPI at /docs) for style "
                                   "transfer and for sampling the GAN runs under --runs. Binds to loopback by "
                                   "default; any other address needs an API key (--api-key or GANFORGE_API_KEY). "
                                   "See docs/serve.md, 'Deploying'. Weights come from GANFORGE_WEIGHTS_DIR / the "
                                   "cache as everywhere.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; others need an API key)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument("--runs", nargs="+", action="extend", default=[], metavar="DIR",
                   help="GAN run directories, or folders holding them, to serve for /v1/generate; also a "
                        "published network: an official .pkl, a rosinality .pt, or a name (stylegan2-ffhq)")
    add_network_options(p)
    p.add_argument("--encoder", help="style encoder weights name or path (default: per method, as ganforge stylize)")
    p.add_argument("--decoder", help="AdaIN/WCT decoder weights name or path (default: as ganforge stylize)")
    p.add_argument("--workers", type=int, default=1, help="model worker threads (default 1)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs waiting before requests get 503 (default 16)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest request body in MB (default 25)")
    p.add_argument("--max-pixels", type=int, default=16_000_000, help="largest uploaded image in pixels (default 16M)")
    p.add_argument("--max-size", type=int, default=1024,
                   help="largest processing size (long side) a client may ask for (default 1024)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a synchronous request may take before 504 (default 120; jobs get 5x)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="stylise requests (AdaIN/WCT, same style, options and processing size) run together in one "
                        "forward pass, at most this many (default 8 on CUDA, 1 = off on CPU)")
    p.add_argument("--batch-window-ms", type=float, default=None,
                   help="how long a worker waits for more requests to batch (default 10 ms on CUDA, 0 elsewhere: "
                        "only requests already queued)")
    p.add_argument("--cache-mb", type=float, default=2048.0, help="model cache size in MB (LRU, default 2048)")
    p.add_argument("--api-key", default=None,
                   help="bearer token every /v1 request must send (Authorization: Bearer KEY); default: the "
                        f"GANFORGE_API_KEY environment variable (preferred: not visible in ps); at least "
                        f"{MIN_KEY_CHARS} characters; required for a non-loopback --host")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name clients may use besides localhost/127.0.0.1/[::1] and --host (repeatable; "
                        "'*' = any); other Host headers get 400 (DNS rebinding)")
    p.add_argument("--rate-limit", default="50/s", metavar="N/s",
                   help="requests per second per client address, bursts of 2 s worth (default 50/s; also "
                        "N/min; 0 = off); over it: 429 with Retry-After")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds a request body may stall before 408; also the idle keep-alive limit is 5 s "
                        "(default 30)")
    add_quiet(p)
    p.set_defaults(func=run_serve)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise GanforgeError(f"--{name} must be positive, got {value}")


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:
        raise GanforgeError(f"ganforge serve needs the serve extra ({exc.name} is missing): "
                            f"pip install 'ganforge[serve]'") from None
    for name in ("workers", "queue_size", "max_upload_mb", "max_pixels", "max_size", "timeout", "cache_mb"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.max_batch is not None:
        _positive("max-batch", args.max_batch)
    if args.batch_window_ms is not None and not 0 <= args.batch_window_ms <= 10_000:
        raise GanforgeError(f"--batch-window-ms must be between 0 and 10000, got {args.batch_window_ms}")
    _positive("read-timeout", args.read_timeout)
    rate = parse_rate(args.rate_limit)
    key = args.api_key if args.api_key is not None else os.environ.get("GANFORGE_API_KEY") or None
    if key is not None and (len(key) < MIN_KEY_CHARS or not key.isprintable() or " " in key):
        raise GanforgeError(f"the API key must be at least {MIN_KEY_CHARS} printable characters without spaces "
                            f"(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if key is None and not is_loopback(args.host):
        raise GanforgeError(f"--host {args.host} exposes the server beyond this machine: give an API key "
                            f"(GANFORGE_API_KEY=... or --api-key), see docs/serve.md 'Deploying'")
    hosts = allowed_hosts(args.host, args.allowed_host)
    from ..server.runs import is_model_file

    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not r.is_dir() and not is_model_file(r):
            raise GanforgeError(f"--runs {r}: not a folder, a published network's .pkl / .pt or its registered name")
    config = ServerConfig(runs=runs, device=args.device, precision=args.precision, encoder=args.encoder,
                          decoder=args.decoder, workers=args.workers, max_queue=args.queue_size,
                          max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                          max_size=args.max_size, default_max_size=min(512, args.max_size),
                          request_timeout=args.timeout, job_timeout=5 * args.timeout,
                          cache_bytes=int(args.cache_mb * 2**20), max_batch=args.max_batch,
                          batch_window_ms=args.batch_window_ms, api_key=key, allowed_hosts=hosts,
                          rate_limit=rate, read_timeout=args.read_timeout)
    app = create_app(config)
    from ..server.routes.common import keep_uploads_in_memory

    keep_uploads_in_memory()  # this process is ours: uploads never spool to /tmp (docs/serve.md)
    service = app.state.service
    if not is_loopback(args.host):
        print(f"ganforge serve: binding {args.host}: /v1 needs the API key; Host names allowed: "
              f"{', '.join(hosts)} (add more with --allowed-host); use TLS in front (docs/serve.md)", file=sys.stderr)
    print(f"ganforge serve: {len(service.runs.all())} run(s), device {service.device}, precision "
          f"{service.precision}; open http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
                access_log=not args.quiet, timeout_graceful_shutdown=5, timeout_keep_alive=5,
                h11_max_incomplete_event_size=16 * 1024, server_header=False)
    return 0

"""The server's settings: :class:`ServerConfig` (``ganforge serve`` fills it from its flags).

Exposure settings (``api_key``, ``allowed_hosts``, ``rate_limit``, ``read_timeout``) are enforced by
:class:`~.middleware.Guard`. ``allowed_hosts=None`` turns the Host check off (an app embedded in
another server, in-process tests); ``ganforge serve`` always sets it (loopback names + bound host +
``--allowed-host``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServerConfig:
    runs: list[Path] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    encoder: str | None = None  # style encoder name/path (default: the Stylizer's choice per method)
    decoder: str | None = None  # AdaIN/WCT decoder name/path (default: the official or packaged one)
    workers: int = 1
    max_queue: int = 16
    max_upload_bytes: int = 25 * 2**20  # the whole request body
    max_pixels: int = 16_000_000  # per uploaded image, checked before decoding
    max_size: int = 1024  # the largest processing size (long side) a client may ask for
    default_max_size: int = 512
    max_styles: int = 4
    max_n: int = 64
    gatys_max_iterations: int = 300
    request_timeout: float = 120.0
    job_timeout: float = 600.0
    cache_bytes: int = 2 * 2**30
    max_result_bytes: int = 256 * 2**20  # finished jobs' results kept at most (oldest evicted first)
    keep_results_s: float = 600.0
    # batching of same-size stylise requests into one forward pass (None: on for CUDA, off elsewhere)
    max_batch: int | None = None  # None: 8 on CUDA, 1 (off) elsewhere
    batch_window_ms: float | None = None  # how long a worker waits for more; None: 10 on CUDA, 0 elsewhere
    # exposure (see the module docstring)
    api_key: str | None = None  # bearer token every /v1 route needs when set
    allowed_hosts: tuple[str, ...] | None = None  # Host header names (no port); "*" = any; None = no check
    rate_limit: float = 50.0  # requests per second per client address (token bucket); 0 = off
    rate_burst: float | None = None  # bucket size; None: 2 s worth of rate_limit (at least 10)
    read_timeout: float = 30.0  # seconds between request-body chunks before 408


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def normalise_host(host: str) -> str:
    """``host`` as the Host header names it, without a port: lower case, IPv6 in brackets."""
    host = host.strip().lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host

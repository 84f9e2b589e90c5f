"""The server's settings: :class:`ServerConfig` (``ganforge serve`` fills it from its flags)."""

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
    keep_results_s: float = 600.0
    # batching of same-size stylise requests into one forward pass (None: on for CUDA, off elsewhere)
    max_batch: int | None = None  # None: 8 on CUDA, 1 (off) elsewhere
    batch_window_ms: float | None = None  # how long a worker waits for more; None: 10 on CUDA, 0 elsewhere

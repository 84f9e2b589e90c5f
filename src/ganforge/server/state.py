"""The state the routes share: one :class:`Service` per app (``app.state.service``), reached by the
routes through the :data:`Svc` dependency."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request

from ..device import resolve_device, resolve_precision
from .config import ServerConfig
from .errors import ApiError
from .jobs import Job, JobQueue, QueueFull
from .models import ModelCache
from .runs import RunIndex


class Service:
    """Device and precision (resolved once, by :mod:`ganforge.device`: fp16 on a CPU is refused
    here, when the app is created), the model cache, the job queue and the served runs."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.cache = ModelCache(config.cache_bytes)
        cuda = self.device.type == "cuda"
        max_batch = config.max_batch if config.max_batch is not None else (8 if cuda else 1)
        window_ms = config.batch_window_ms if config.batch_window_ms is not None else (10.0 if cuda else 0.0)
        self.queue = JobQueue(workers=config.workers, max_queue=config.max_queue, keep_s=config.keep_results_s,
                              max_jobs=max(64, 4 * (config.max_queue + config.workers)),
                              max_batch=max_batch, batch_window_s=window_ms / 1000.0,
                              max_result_bytes=config.max_result_bytes)
        self.runs = RunIndex(config.runs)
        self.started = time.time()

    def submit(self, kind: str, fn, **batch: Any) -> Job:
        self.queue.start()
        try:
            return self.queue.submit(kind, fn, self.config.job_timeout, **batch)
        except QueueFull as exc:
            raise ApiError(503, f"server busy: {exc}", {"Retry-After": "2"}) from None


def get_service(request: Request) -> Service:
    return request.app.state.service


Svc = Annotated[Service, Depends(get_service)]

"""What the work routes share: building a request's spec off the event loop, waiting for a job
(cancelling it when the client goes away) and answering with its result.

Uploads stay in memory under ``ganforge serve``: starlette spools a multipart file part to a
temporary file above 1 MB; :func:`keep_uploads_in_memory` (called by the CLI, which owns its
process) raises that threshold so a part stays in memory up to the body limit, which
:class:`~ganforge.server.middleware.BodyLimit` enforces before the form parser sees the bytes. An
app embedded with ``create_app`` in someone else's process keeps starlette's setting: importing
this module changes no global state."""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Any, Awaitable, Callable

import anyio

from fastapi import Request
from fastapi.responses import Response
from starlette.formparsers import MultiPartParser

from ..errors import ApiError, error_response
from ..jobs import Job
from ..state import Service

log = logging.getLogger("ganforge.server")



def keep_uploads_in_memory() -> None:
    """Never roll an upload over to a file in /tmp (the whole body is already bounded by BodyLimit).
    A process-wide starlette setting: only the process's owner (``ganforge serve``) calls it."""
    MultiPartParser.spool_max_size = sys.maxsize

POLL_S = 0.25  # how often a waiting request checks whether its client is still there
DECODE_THREADS = 2  # uploads decoded at once (more only queue: CPU and peak memory stay bounded)
_limiters: "weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter]" = weakref.WeakKeyDictionary()


def _decode_limiter() -> anyio.CapacityLimiter:
    """One limiter per event loop (tests run several apps, each on its own loop)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(DECODE_THREADS)
    return limiter


def _run_coroutine(make: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(make())  # type: ignore[arg-type]


async def off_loop(build: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Await ``build(*args)`` in a worker thread (its own short-lived event loop) so that the image
    decoding, EXIF rotation and conversion it does never block this server's event loop (the
    uploads are already received and held in memory: reading them there touches no socket). At
    most :data:`DECODE_THREADS` run at once, on their own limiter (not the threadpool that serves
    the light sync endpoints such as /healthz)."""
    return await anyio.to_thread.run_sync(_run_coroutine, lambda: build(*args), limiter=_decode_limiter())


async def run_now(service: Service, job: Job, request: Request | None = None) -> Response:
    """Wait for ``job`` up to the request timeout (then cancel it: 504) and answer its result. When
    the client disconnects meanwhile, the job is cancelled (queued: dropped at once; running: it
    stops at its next progress point) and nobody is answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.config.request_timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            job.cancel()  # a queued job drops its inputs now and its queue slot when a worker reaches it
            raise ApiError(504, f"the request took longer than {service.config.request_timeout:g} s; use POST "
                                f"/v1/jobs for long work")
        if await job.wait(min(POLL_S, left) if request is not None else left):
            return job_response(job)
        if request is not None and await request.is_disconnected():
            service.queue.cancel(job)
            log.info("job %s (%s) cancelled: its client disconnected", job.id, job.kind)
            return Response(status_code=499)  # nobody reads it


def job_response(job: Job) -> Response:
    if job.status == "done" and job.result is not None:
        return Response(job.result.body, media_type=job.result.media_type,
                        headers={"Content-Disposition": f'inline; filename="{job.result.filename}"',
                                 "X-Ganforge-Job": job.id})
    status, message = job.error or (500, "job failed")
    return error_response(status, message, job=job.id, **({"error_id": job.error_id} if job.error_id else {}))

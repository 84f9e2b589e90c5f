"""The ganforge HTTP server: a JSON/HTTP API (OpenAPI at /docs, /openapi.json) and a web page (/).

Every model call goes through one bounded :class:`~.jobs.JobQueue` served by ``workers`` threads:
``POST /v1/stylize`` and ``POST /v1/generate`` submit a job and wait for it (up to
``request_timeout``); ``POST /v1/jobs`` submits the same work and returns its id at once, for
progress polling. A full queue answers 503 with Retry-After. Errors are JSON ``{"error": message}``,
never a stack trace or a filesystem path. :class:`~.middleware.Guard` checks Host, API key, origin,
rate and read timeouts before any route runs.

Layout: :mod:`.config` (settings), :mod:`.state` (the shared :class:`~.state.Service`),
:mod:`.specs` (request checking), :mod:`.work` (the model work), :mod:`.middleware`,
:mod:`.errors` and :mod:`.routes` (one router per area); this module only wires them together.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..version import __version__
from .config import ServerConfig
from .errors import install_handlers
from .middleware import BodyLimit, Guard
from .routes import ROUTERS
from .state import Service

__all__ = ["ServerConfig", "create_app"]


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app for ``config`` (tests use it with TestClient; ``ganforge serve`` with uvicorn).
    Device and precision are resolved here by :mod:`ganforge.device`: a precision the device cannot
    run (fp16 without CUDA) raises its one-line GanforgeError."""
    service = Service(config or ServerConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.queue.start()
        yield
        service.queue.stop()

    app = FastAPI(title="ganforge", version=__version__, lifespan=lifespan,
                  description="Style transfer (AdaIN, WCT, Gatys) and sampling from trained GAN runs. "
                              "Errors are JSON objects with an `error` message.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=service.config.max_upload_bytes)
    app.add_middleware(Guard, config=service.config, server_dirs=service.runs.dirs())  # outermost: runs first
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app

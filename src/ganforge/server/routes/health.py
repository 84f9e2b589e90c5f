"""Status: ``/healthz`` (liveness, queue, cache) and ``/v1/models`` (runs, methods, weights, limits)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...version import __version__
from ..errors import scrub_data
from ..state import Svc
from ..work import method_status

router = APIRouter(tags=["status"])


@router.get("/healthz", summary="liveness, queue and model-cache state",
            description="Open without the API key; with a key configured, clients without it get only "
                        "status and version.")
def healthz(s: Svc, request: Request) -> dict[str, Any]:
    if s.config.api_key and not request.scope.get("ganforge.auth"):
        return {"status": "ok", "version": __version__}
    return scrub_data({"status": "ok", "version": __version__, "device": str(s.device), "precision": s.precision,
                       "uptime_s": round(time.time() - s.started, 1), "queue": s.queue.stats(),
                       "cache": s.cache.stats()}, s.runs.dirs())


@router.get("/v1/models", summary="served runs, style methods and registered weights")
def models(s: Svc) -> dict[str, Any]:
    from ... import weights as W

    reg = []
    for name in W.WEIGHTS.names() if hasattr(W.WEIGHTS, "names") else list(W.WEIGHTS):
        entry = W.WEIGHTS.get(name)
        try:
            available = W.find(name) is not None
        except Exception:
            available = False
        reg.append({"name": entry.name, "licence": entry.licence, "architecture": entry.architecture,
                    "description": entry.description, "available": available, "downloadable": bool(entry.url)})
    return {"runs": [r.describe() for r in s.runs.all().values()], "methods": method_status(s),
            "weights": reg, "limits": {"max_upload_bytes": s.config.max_upload_bytes,
                                       "max_pixels": s.config.max_pixels, "max_size": s.config.max_size,
                                       "default_max_size": s.config.default_max_size,
                                       "max_styles": s.config.max_styles, "max_n": s.config.max_n,
                                       "gatys_max_iterations": s.config.gatys_max_iterations,
                                       "request_timeout_s": s.config.request_timeout}}

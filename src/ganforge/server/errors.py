"""Errors as the client sees them: JSON ``{"error": message, "status": code}``, never a stack trace
and never a filesystem path. :class:`ApiError` carries a status from anywhere in a request;
:func:`install_handlers` maps it and every other exception FastAPI meets to that shape. The
server's own faults (:func:`server_fault`) answer 500 with an ``error_id`` that its log line
carries too. :func:`scrub` takes absolute paths out of text a client will see."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("ganforge.server")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 error_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers, self.error_id = status, message, headers, error_id

    @classmethod
    def fault(cls, exc: BaseException | None, context: str) -> "ApiError":
        """A 500 for the server's own fault, logged under an error id (see :func:`server_fault`)."""
        status, message, error_id = server_fault(exc, context)
        return cls(status, message, error_id=error_id)


def error_response(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status, headers=headers)


def server_fault(exc: BaseException | None, context: str) -> tuple[int, str, str]:
    """Log a server-side fault (with its traceback) under a new error id; answer ``(500, message,
    error_id)``, the message naming the id and neither the exception's text nor a path."""
    error_id = uuid.uuid4().hex[:12]
    # the traceback as text: a LogRecord holding exc_info would pin the frames (and a request's inputs in them)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip() if exc is not None else ""
    log.error("error id %s: %s%s", error_id, context, f"\n{trace}" if trace else "")
    name = type(exc).__name__ if exc is not None else "fault"
    return 500, f"internal error ({name}, error id {error_id}); see the server log", error_id


# An absolute path of two or more components, not one of the API's own routes; in JSON text or plain.
_PATH_RE = re.compile(r"(?<![\w/.~-])(?:[A-Za-z]:[\\/]+|~?/)(?!v1/|static/|healthz|docs|openapi)"
                      r"[^\s'\"/\\<>|]+(?:[\\/]+[^\s'\"/\\<>|]*)+")


def _known_dirs() -> list[str]:
    dirs = {tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd(),
            os.environ.get("GANFORGE_HOME") or "", os.environ.get("GANFORGE_WEIGHTS_DIR") or ""}
    out = set()
    for d in dirs:
        if len(d) > 1:
            out.add(d)
            try:
                out.add(str(Path(d).resolve()))
            except OSError:
                pass
    return sorted(out, key=len, reverse=True)


def scrub(text: str, extra_dirs: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every absolute path replaced by ``…/`` + its last component (the server's
    folders in ``extra_dirs``, the temp, home, working and ganforge folders are cut whatever follows)."""
    text = _PATH_RE.sub(lambda m: "…/" + re.split(r"[\\/]+", m.group(0).rstrip("/\\"))[-1], text)
    for d in sorted(set(extra_dirs), key=len, reverse=True) + _known_dirs():
        for form in {d, json.dumps(d)[1:-1]}:
            if form and form in text:
                text = text.replace(form, "…")
    return text


def scrub_data(data: Any, extra_dirs: list[str] | tuple[str, ...] = ()) -> Any:
    """:func:`scrub` applied to every string (and key) of a JSON-like value."""
    if isinstance(data, str):
        return scrub(data, extra_dirs)
    if isinstance(data, dict):
        return {scrub_data(k, extra_dirs) if isinstance(k, str) else k: scrub_data(v, extra_dirs)
                for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub_data(v, extra_dirs) for v in data]
    return data


def install_handlers(app: FastAPI) -> None:
    """Every error an app answers, as one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        extra = {"error_id": exc.error_id} if exc.error_id else {}
        return error_response(exc.status, exc.message, exc.headers, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]
            where = ".".join(str(p) for p in loc)
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        status, message, error_id = server_fault(exc, f"unhandled error on {request.method} {request.url.path}")
        return error_response(status, message, error_id=error_id)

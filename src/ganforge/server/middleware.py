"""ASGI middleware: :class:`Guard` (Host allow-list, API key, cross-origin writes, per-client rate
limit, body read timeout, no paths in JSON answers) and :class:`BodyLimit` (request-body size)."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from typing import Any
from urllib.parse import urlsplit

from .config import ServerConfig, normalise_host
from .errors import ApiError, scrub

SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")
_JSON_SCRUB_LIMIT = 4 * 2**20


def _host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:80`` → ``[::1]``, ``Example.org:7860`` → ``example.org``)."""
    host = host.strip()
    if host.startswith("["):
        return normalise_host(host[: host.find("]") + 1] if "]" in host else host)
    return normalise_host(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)


class RateLimiter:
    """A token bucket per client address: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float | None = None, max_clients: int = 10_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(10.0, 2.0 * self.rate)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str, now: float | None = None) -> float:
        """0 if ``client`` may go on (a token is spent), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_clients:  # forget the clients whose buckets are full again
                full = [c for c, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
                for c in full or list(self._buckets)[: len(self._buckets) // 2]:
                    self._buckets.pop(c, None)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate


async def send_json(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """What stands between the network and the app, in this order: the Host header must be an
    allowed name (DNS rebinding: 400); a client over its rate answers 429 with Retry-After; with an
    API key every ``/v1`` route needs ``Authorization: Bearer KEY`` (401), the page, its files,
    ``/healthz`` and the OpenAPI schema stay open; a write (POST, DELETE, …) from another origin
    (``Origin`` not this host, or ``Sec-Fetch-Site`` cross-site/same-site) without the key is 403; a
    request body that stalls ``read_timeout`` seconds is cut with 408; absolute paths are taken out
    of every JSON answer. ``scope["ganforge.auth"]`` tells the routes whether the key was given."""

    def __init__(self, app: Any, config: ServerConfig, server_dirs: list[str] | tuple[str, ...] = ()) -> None:
        self.app = app
        self.key = config.api_key.encode() if config.api_key else None
        self.hosts = None if config.allowed_hosts is None else {normalise_host(h) for h in config.allowed_hosts}
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None
        self.read_timeout = config.read_timeout
        self.server_dirs = tuple(server_dirs)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        if self.key is None:
            return False
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and "*" not in self.hosts and _host_name(host) not in self.hosts:
            return await send_json(send, 400, "unknown Host header; start the server with --allowed-host NAME "
                                              "to serve under that name")
        if self.limiter is not None:
            client = (scope.get("client") or ("?",))[0]
            wait = self.limiter.take(str(client))
            if wait > 0:
                return await send_json(send, 429, "too many requests from this address; slow down",
                                       {"Retry-After": str(max(1, math.ceil(wait)))})
        authorised = self._authorised(headers)
        scope["ganforge.auth"] = authorised
        path = scope.get("path", "")
        if self.key is not None and not authorised and (path == "/v1" or path.startswith("/v1/")):
            return await send_json(send, 401, "this server needs an API key: send 'Authorization: Bearer KEY'",
                                   {"WWW-Authenticate": "Bearer"})
        if scope.get("method", "GET").encode() not in SAFE_METHODS and not authorised:
            origin = headers.get(b"origin")
            site = headers.get(b"sec-fetch-site", b"").lower()
            if site in (b"cross-site", b"same-site") or (
                    origin is not None and urlsplit(origin.decode("latin-1")).netloc.lower() != host.lower()):
                return await send_json(send, 403, "cross-origin request refused (send the API key to allow it)")
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        state = {"body_done": False, "timed_out": False, "started": False, "start": None, "chunks": []}

        async def timed_receive() -> Any:
            if state["body_done"] or not self.read_timeout:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except asyncio.TimeoutError:
                state["timed_out"] = True
                raise ApiError(408, "request body stalled") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def scrubbing_send(message: Any) -> None:
            if state["timed_out"]:
                if not state["started"]:
                    state["started"] = True
                    await send_json(send, 408, f"request body stalled for {self.read_timeout:g} s",
                                    {"Connection": "close"})
                return
            if message["type"] == "http.response.start":
                state["started"] = True
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                if ctype.startswith(b"application/json"):
                    state["start"] = message
                    return
            elif message["type"] == "http.response.body" and state["start"] is not None:
                state["chunks"].append(message.get("body", b""))
                more = message.get("more_body", False)
                if more and sum(map(len, state["chunks"])) < _JSON_SCRUB_LIMIT:
                    return
                start, body, state["start"], state["chunks"] = state["start"], b"".join(state["chunks"]), None, []
                if not more:  # the whole JSON answer: scrubbed, its length set again
                    body = scrub(body.decode("utf-8", "replace"), self.server_dirs).encode()
                    start = {**start, "headers": [(k, v) for k, v in start.get("headers") or []
                                                  if k != b"content-length"]
                             + [(b"content-length", str(len(body)).encode())]}
                await send(start)  # (too large to hold: passed on as it is)
                message = {**message, "body": body}
            await send(message)

        try:
            await self.app(scope, timed_receive, scrubbing_send)
        except ApiError:
            if not state["timed_out"]:
                raise
            if not state["started"]:
                state["started"] = True
                await send_json(send, 408, f"request body stalled for {self.read_timeout:g} s",
                                {"Connection": "close"})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by Content-Length up front, and by counting
    what arrives (chunked uploads) before the form parser spools it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _send_413(self, send: Any) -> None:
        body = json.dumps({"error": f"request body larger than the {self.max_bytes:,}-byte upload limit",
                           "status": 413}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._send_413(send)
        state = {"received": 0, "over": False, "replaced": False}

        async def limited_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise ApiError(413, "request body too large")
            return message

        async def guarded_send(message: Any) -> None:
            if state["over"]:
                if not state["replaced"]:
                    state["replaced"] = True
                    await self._send_413(send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ApiError:
            if not state["replaced"]:
                state["replaced"] = True
                await self._send_413(send)

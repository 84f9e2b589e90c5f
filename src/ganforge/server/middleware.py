"""ASGI middleware: :class:`BodyLimit`, the request-body size guard."""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError


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

"""ASGI middleware: a body-size limit counted on the stream, and per-route latency metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

requests_log = logging.getLogger("service.requests")
SLOW_SECONDS = 1.0


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Reads the body up front, counting bytes as they arrive; over the limit -> 413.

    Content-Length is used only to refuse early, never trusted to be the truth: a chunked or
    lying client is cut off by the count. Bodies are small (≤ 1 MiB), so buffering is cheap.
    """

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        too_big = f"request body over {limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reply(send, 413, too_big)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def route_template(scope: Scope) -> str:
    """The matched path with its parameters put back as names: /v1/movies/{movie_id}."""
    if scope.get("route") is None:
        return "unmatched"
    parts = scope["path"].split("/")
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    return "/".join(f"{{{names[p]}}}" if p in names else p for p in parts)


class MetricsMiddleware:
    """Latency per route template (not per raw path, which would explode label cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            seconds = time.perf_counter() - started
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                seconds
            )
            # Structured request log instead of an access log: errors and slow requests at
            # INFO, the rest at DEBUG (off by default, so the hot path pays one level check).
            level = logging.INFO if status >= 400 or seconds > SLOW_SECONDS else logging.DEBUG
            if requests_log.isEnabledFor(level):
                requests_log.log(
                    level,
                    json.dumps(
                        {
                            "method": scope["method"],
                            "route": template,
                            "status": status,
                            "ms": round(seconds * 1e3, 2),
                        }
                    ),
                )

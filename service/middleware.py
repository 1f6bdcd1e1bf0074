"""ASGI middleware: an in-flight limit, a body guard (size counted on the stream, strict JSON),
and per-route latency metrics. Pure ASGI, so each costs a function call, not a task."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.jsonbody import BadJSON, load_json
from service.metrics import Metrics

requests_log = logging.getLogger("service.requests")
SLOW_SECONDS = 1.0


async def _reply(
    send: Send, status: int, detail: str, *, close: bool = True, retry_after: int | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InFlightLimitMiddleware:
    """At most `limit` requests in progress; the next one gets a 503 with Retry-After at once.

    Requests, not connections, are counted (uvicorn's `limit_concurrency` counts open
    connections too, so idle keep-alive clients could refuse everything). Paths in `exempt`
    (the health checks, which touch nothing) are never counted nor refused: an overloaded
    replica stays alive and visibly overloaded rather than being replaced. One event loop, so a
    plain counter is exact.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: Collection[str], metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.shed.inc()
            await _reply(
                send,
                503,
                f"overloaded: {self.limit} requests in progress; retry shortly",
                close=False,
                retry_after=1,
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyLimitMiddleware:
    """Reads the body up front, counting bytes as they arrive; over the limit -> 413. A JSON
    body must then parse strictly (`service.jsonbody`), else 400, before any route sees it.

    Content-Length is used only to refuse early, never trusted to be the truth: a chunked or
    lying client is cut off by the count. Bodies are small (≤ 1 MiB), so buffering is cheap.
    Paths in `raw_paths` (the webhook, whose signature covers the raw bytes) parse their own.
    A body not received within `read_timeout` is a 408: a trickling client would otherwise
    hold an in-flight slot for good.
    """

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        limits: Mapping[str, int],
        raw_paths: Collection[str] = (),
        read_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.default_limit = default_limit
        self.limits = dict(limits)
        self.raw_paths = frozenset(raw_paths)

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
        try:
            async with asyncio.timeout(self.read_timeout):
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
        except TimeoutError:
            await _reply(send, 408, f"request body not received within {self.read_timeout:g}s")
            return
        body = b"".join(chunks)
        if body and scope["path"] not in self.raw_paths and _is_json(scope):
            try:
                load_json(body)
            except BadJSON as exc:
                await _reply(send, 400, str(exc))
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it is declared so, or when no type is declared."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


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

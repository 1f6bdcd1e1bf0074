"""One pure-ASGI middleware in front of the app: per-route latency metrics, a body guard (size
counted on the stream, a deadline, strict JSON) and an in-flight limit. One layer rather than
three: each layer was a coroutine frame and a closure per request on a path that does little
else; the order inside is the order the three had (metrics outermost, the limit innermost)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.admission import Admission
from service.api.errors import RETRY_AFTER_SECONDS
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


BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
Labels = tuple[str, str, int]


class EdgeMiddleware:
    """Metrics, then the body guard, then the in-flight limit, then the app.

    Metrics: latency per route template (not per raw path, which would explode label
    cardinality), and a structured request log instead of an access log, naming the API key
    (its name, never the key). An answer to a request the load balancer received over HTTPS
    (`X-Forwarded-Proto: https`) carries Strict-Transport-Security.

    Body guard: the body is read up front, counting bytes as they arrive; over the limit -> 413.
    Content-Length is used only to refuse early, never trusted to be the truth: a chunked or
    lying client is cut off by the count. Bodies are small (<= 1 MiB), so buffering is cheap.
    A JSON body must then parse strictly (`service.jsonbody`), else 400, before any route sees
    it; paths in `raw_paths` (the webhook, whose signature covers the raw bytes) parse their
    own. A body not received within `read_timeout` is a 408: a trickling client would otherwise
    hold an in-flight slot for good. The body is read before a request takes a slot, so a
    client trickling its body costs a connection, never a slot.

    In-flight limit (`Admission`): at most `max_in_flight` requests in progress; the next one
    gets a 503 with Retry-After at once. Requests, not connections, are counted (uvicorn's
    `limit_concurrency` counts open connections too, so idle keep-alive clients could refuse
    everything); a request waiting for an index version gives its slot back meanwhile. Paths in
    `exempt` (the health checks, which touch nothing) are never counted nor refused: an
    overloaded replica stays alive and visibly overloaded rather than being replaced.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        admission: Admission,
        exempt: Collection[str],
        default_body_limit: int,
        body_limits: Mapping[str, int],
        raw_paths: Collection[str] = (),
        read_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.admission = admission
        self.exempt = frozenset(exempt)
        self.default_body_limit = default_body_limit
        self.body_limits = dict(body_limits)
        self.raw_paths = frozenset(raw_paths)
        self.read_timeout = read_timeout
        self._shed_detail = (
            f"overloaded: {admission.max_in_flight} requests in progress; retry shortly"
        )
        self._observers: dict[Labels, Callable[[float], None]] = {}  # one child per label set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        https = (b"x-forwarded-proto", b"https") in scope.get("headers", ())

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if https:  # behind the TLS listener: browsers must never fall back to http
                    message["headers"] = [*message.get("headers", ()), HSTS]
            await send(message)

        try:
            if scope["method"] not in BODYLESS:
                body = await self._read_body(scope, receive, send_status)
                if body is None:
                    return
                receive = _replay(body, receive)
            if scope["path"] in self.exempt:
                await self.app(scope, receive, send_status)
            elif not self.admission.enter():
                self.metrics.shed.inc()
                await _reply(
                    send_status,
                    503,
                    self._shed_detail,
                    close=False,
                    retry_after=RETRY_AFTER_SECONDS,
                )
            else:
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    self.admission.leave()
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when it was answered here (413, 408, 400) or the client left."""
        limit = self.body_limits.get(scope["path"], self.default_body_limit)
        too_big = f"request body over {limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reply(send, 413, too_big)
                return None
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _reply(send, 413, too_big)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _reply(send, 408, f"request body not received within {self.read_timeout:g}s")
            return None
        body = b"".join(chunks)
        if body and scope["path"] not in self.raw_paths and _is_json(scope):
            try:
                load_json(body)
            except BadJSON as exc:
                await _reply(send, 400, str(exc))
                return None
        return body

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        template = route_template(scope)
        labels = (scope["method"], template, status)
        observe = self._observers.get(labels)
        if observe is None:
            child = self.metrics.request_seconds.labels(scope["method"], template, str(status))
            observe = self._observers[labels] = child.observe
        observe(seconds)
        # Errors and slow requests at INFO, the rest at DEBUG (off by default, so the hot path
        # pays one level check).
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
                        "key": scope.get("state", {}).get("api_key"),  # its name, set by auth
                    }
                ),
            )


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as the app's first message; later calls reach the client (disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it is declared so, or when no type is declared."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def route_template(scope: Scope) -> str:
    """The matched path with its parameters put back as names: /v1/movies/{movie_id}. (Not the
    route's `path_format`: FastAPI's included routes hold their path without the prefix.)"""
    if scope.get("route") is None:
        return "unmatched"
    parts = scope["path"].split("/")
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    return "/".join(f"{{{names[p]}}}" if p in names else p for p in parts)

"""uvicorn's HTTP protocol (httptools) with a deadline on reading a request's headers.

uvicorn times out a keep-alive connection only after a response; a client that connects and
sends nothing, or sends its headers a byte at a time, would hold its connection for good.
Here a connection that sends nothing is closed after the keep-alive timeout, and a request
whose headers are not complete within `read_timeout_seconds` (a setting) of its first byte
is closed. The body has its own deadline in `service.api.middleware.EdgeMiddleware`.
"""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings


@functools.cache
def header_timeout() -> float:
    """Read once per process (uvicorn builds the protocol by class, not from our settings)."""
    return Settings().read_timeout_seconds


class HeaderDeadlineProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timeout = header_timeout()
        self._arm(self.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

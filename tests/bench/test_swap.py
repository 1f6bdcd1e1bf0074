"""bench.swap's open-loop load: requests leave on their schedule whatever the server does, a
stall is counted from each request's scheduled send, and a failure is counted as one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from bench.swap import OpenLoop, fargate_memory_mib, slowest, window

STALL = 0.4  # seconds the stub stops answering, a while into the load


class Stub:
    """An HTTP server on a free port that answers a fixed recommendation body (503 for user 13),
    and stops answering for STALL seconds once `stall()` is called."""

    def __init__(self) -> None:
        self.port = 0
        self._stall_until = 0.0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)
            while head := await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(max(0.0, self._stall_until - time.monotonic()))
                busy = b"/users/13/" in head
                status = b"503 Service Unavailable" if busy else b"200 OK"
                body = b'{"detail": "busy"}' if busy else b'{"items": [], "model_version": "v2"}'
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()

        async def start() -> None:
            self._server = await asyncio.start_server(answer, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0.05))
        self._loop.close()

    def stall(self) -> None:
        self._stall_until = time.monotonic() + STALL

    def __enter__(self) -> Stub:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def stub() -> Iterator[Stub]:
    with Stub() as server:
        yield server


def test_the_open_loop_keeps_its_rate_and_counts_a_stall_from_the_schedule(stub: Stub) -> None:
    rate = 200.0
    with OpenLoop([f"http://127.0.0.1:{stub.port}"], "", (1, 20), rate) as load:
        time.sleep(0.5)
        stalled = time.monotonic()
        stub.stall()
        time.sleep(1.0)
        samples = load.stop()
    seconds = samples.scheduled[-1] - samples.scheduled[0]
    assert len(samples.scheduled) == pytest.approx(seconds * rate + 1, abs=2)  # on schedule
    during = window(samples, stalled, stalled + STALL)
    before = window(samples, stalled - 0.4, stalled)
    # Requests sent during the stall waited for its end: their latency counts from their send.
    assert during.requests == pytest.approx(STALL * rate, abs=3)
    assert during.max_ms >= 0.8 * STALL * 1e3 and before.p99_ms < 0.5 * STALL * 1e3
    answered_at, worst_ms = slowest(samples, 0, stalled, stalled + STALL)
    assert answered_at == pytest.approx(STALL, abs=0.1) and worst_ms == during.max_ms
    # User 13 (1 in 20) is a 503: failed, by its status; every other answer names its model.
    whole = window(samples, 0, time.monotonic())
    assert set(whole.failures) == {503} and whole.failed == whole.failures[503] > 0
    assert whole.versions["v2"] == whole.requests - whole.failed


def test_the_task_memory_is_read_from_the_infra_config() -> None:
    from infra.config import StageConfig

    assert fargate_memory_mib() == StageConfig().memory_mib

"""The real server over real HTTP: uvicorn in a subprocess, started by `movie-recs serve`."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.harness.servers import Server, server_env
from service.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def server(app_settings, tmp_path: Path) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    env = server_env(
        app_settings.store_url,
        app_settings.artifacts_dir,
        MOVIE_RECS_FRESHNESS_WAIT_SECONDS="3",
    )
    with Server(env, tmp_path / "server.log") as replica:
        replica.wait_ready()
        yield replica


def test_recommendations_over_real_http(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/users/1/recommendations", params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == "personalized" and len(body["items"]) == 3
    event = httpx.post(f"{server.url}/v1/users/e2e/events", json={"movie_id": "318"})
    assert event.status_code == 202
    after = httpx.get(f"{server.url}/v1/users/e2e/recommendations").json()
    assert after["history_length"] == 1 and after["items"][0]["because"]["movie_id"] == "318"
    assert httpx.get(f"{server.url}/v1/movies/nope").status_code == 404
    assert "service: ready: model" in server.log.read_text()  # the service's lifecycle log
    # The request log line is written once the response has gone out: wait for it a moment
    # (a loaded machine read the log before it was written).
    line = '"route": "/v1/movies/{movie_id}", "status": 404'
    deadline = time.monotonic() + 5
    while line not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in server.log.read_text()  # structured request log


@contextlib.contextmanager
def store_locked(store_url: str) -> Iterator[None]:
    """Hold the SQLite store's write lock: the server's next write waits for it (SQLite's lock
    wait), holding its request in progress, as a slow dependency would."""
    conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def post_event(url: str, user: str, out: list[tuple[int, float]]) -> None:
    started = time.monotonic()
    response = httpx.post(f"{url}/v1/users/{user}/events", json={"movie_id": "1"}, timeout=30)
    out.append((response.status_code, time.monotonic() - started))


def test_sigterm_finishes_the_in_flight_request_and_exits_zero(
    server: Server,
    app_settings: Settings,
) -> None:
    answered: list[tuple[int, float]] = []
    codes: list[int] = []
    with store_locked(app_settings.store_url):
        writer = threading.Thread(target=post_event, args=(server.url, "sigterm", answered))
        writer.start()
        time.sleep(1.0)
        stopper = threading.Thread(target=lambda: codes.append(server.stop()))
        stopper.start()
        time.sleep(1.5)  # SIGTERM sent; the write still waits for the lock
    writer.join(30)
    stopper.join(30)

    assert answered and answered[0][0] == 202  # answered, not cut off
    assert answered[0][1] >= 2.5
    assert codes == [0]
    assert "Waiting for connections to close" in server.log.read_text()


@pytest.fixture
def limited(app_settings, tmp_path: Path) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    env = server_env(
        app_settings.store_url, app_settings.artifacts_dir, MOVIE_RECS_MAX_IN_FLIGHT="8"
    )
    with Server(env, tmp_path / "server.log") as replica:
        replica.wait_ready()
        yield replica


def test_requests_past_the_in_flight_limit_get_a_fast_503(
    limited: Server, app_settings: Settings
) -> None:
    """8 writes wait on the store; the next requests are refused at once, health checks are
    not, and the slots free up afterwards."""
    url = limited.url
    anonymous = {"history": [{"movie_id": "1"}]}
    answered: list[tuple[int, float]] = []
    with store_locked(app_settings.store_url):
        holders = [
            threading.Thread(target=post_event, args=(url, f"holder-{i}", answered))
            for i in range(8)
        ]
        for thread in holders:
            thread.start()
        time.sleep(1.0)
        for _ in range(10):
            started = time.monotonic()
            response = httpx.post(f"{url}/v1/recommendations", json=anonymous, timeout=30)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1" and "overloaded" in response.text
            assert time.monotonic() - started < 1.0
        for path in ("/healthz", "/readyz"):
            assert httpx.get(f"{url}{path}", timeout=30).status_code == 200
    for thread in holders:
        thread.join(30)
    assert sorted(code for code, _ in answered) == [202] * 8
    assert httpx.post(f"{url}/v1/recommendations", json=anonymous, timeout=30).status_code == 200

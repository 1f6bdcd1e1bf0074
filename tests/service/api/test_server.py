"""The real server over real HTTP: uvicorn in a subprocess, started by `movie-recs serve`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.harness.servers import Server, server_env

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


def test_sigterm_finishes_the_in_flight_request_and_exits_zero(server: Server) -> None:
    result: dict[str, object] = {}

    def slow_request() -> None:
        # waits (up to 3 s here) for an index version that will not come, then answers 503
        started = time.monotonic()
        response = httpx.get(
            f"{server.url}/v1/users/1/recommendations",
            params={"min_index_version": 10**9},
            timeout=30,
        )
        result.update(status=response.status_code, seconds=time.monotonic() - started)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(1.0)
    code = server.stop()
    thread.join(30)

    assert result["status"] == 503  # answered, not cut off
    assert result["seconds"] >= 2.5  # type: ignore[operator]
    assert code == 0
    assert "Waiting for connections to close" in server.log.read_text()

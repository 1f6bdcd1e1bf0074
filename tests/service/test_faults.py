"""Faults done to a running server: idle and slow clients, overload, and a Redis that freezes,
dies, and comes back empty. One real `movie-recs serve` on a redis-server of the test's own.

What a client must see throughout: 503 + Retry-After within the store deadline (+0.5 s) for
what needs the store, everything else served from memory, health checks always fast, no 5xx
but 503, no acknowledged write lost, recovery without a restart. The tests run in file order,
each leaving the server healthy for the next.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.harness.redis import RedisServer
from bench.harness.servers import Server, server_env
from embeddings.data import BUNDLED_DATA
from service.ingest.webhook_signer import post_webhook
from tests.support.service import SECRET, seed

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)  # latencies seen: pytest --log-cli-level=INFO shows them
STORE_DEADLINE = 1.0
# The bound for every call under every fault: the store deadline + 0.5 s. Calls that
# need no store are held to it too (they take milliseconds; the cores are shared with others).
LIMIT = STORE_DEADLINE + 0.5
IN_FLIGHT = 8
HEADER_TIMEOUT = 2.0


@dataclass
class Cluster:
    redis: RedisServer
    server: Server

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def cluster(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("faults")
    redis = RedisServer(directory / "redis")
    redis.start()
    seed(redis.url, BUNDLED_DATA)
    env = server_env(
        redis.url,
        tiny_model_dir,
        MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
        MOVIE_RECS_STORE_TIMEOUT_SECONDS=str(STORE_DEADLINE),
        MOVIE_RECS_MAX_IN_FLIGHT=str(IN_FLIGHT),
        MOVIE_RECS_READ_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        MOVIE_RECS_FRESHNESS_WAIT_SECONDS="3",
    )
    server = Server(env, directory / "server.log")
    try:
        server.wait_ready(timeout=180)
        yield Cluster(redis, server)
    finally:
        server.kill()
        redis.kill()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def webhook(url: str, payload: object, msg_id: str) -> httpx.Response:
    return post_webhook(url, SECRET, payload, msg_id=msg_id)


def store_calls(url: str) -> dict[str, Callable[[], httpx.Response]]:
    """Calls that need the store: during an outage, a fast 503."""
    upsert = {"type": "movie.upserted", "data": {"id": "800001", "title": "During"}}
    return {
        "user recommendations": lambda: httpx.get(f"{url}/v1/users/1/recommendations", timeout=30),
        "movie": lambda: httpx.get(f"{url}/v1/movies/1", timeout=30),
        "event": lambda: httpx.post(
            f"{url}/v1/users/faults/events", json={"movie_id": "1"}, timeout=30
        ),
        "webhook": lambda: webhook(url, upsert, f"during-{time.monotonic_ns()}"),
    }


def memory_calls(url: str) -> dict[str, Callable[[], httpx.Response]]:
    """Calls answered from this replica's memory: they go on during an outage."""
    return {
        "anonymous recommendations": lambda: httpx.post(
            f"{url}/v1/recommendations", json={"history": [{"movie_id": "1"}]}, timeout=30
        ),
        "similar movies": lambda: httpx.get(f"{url}/v1/movies/1/similar", timeout=30),
        "healthz": lambda: httpx.get(f"{url}/healthz", timeout=30),
        "readyz": lambda: httpx.get(f"{url}/readyz", timeout=30),
    }


def assert_store_calls_503_fast(url: str) -> dict[str, float]:
    seen = {}
    for name, call in store_calls(url).items():
        response, seconds = timed(call)
        assert response.status_code == 503, (name, response.status_code, response.text)
        assert response.headers.get("retry-after") == "1", name
        assert "store unavailable" in response.json()["detail"], name
        assert seconds < LIMIT, (name, seconds)
        seen[name] = round(seconds, 3)
    return seen


def assert_memory_calls_200_fast(url: str) -> dict[str, float]:
    seen = {}
    for name, call in memory_calls(url).items():
        response, seconds = timed(call)
        assert response.status_code == 200, (name, response.status_code, response.text)
        assert seconds < LIMIT, (name, seconds)
        seen[name] = round(seconds, 3)
    items = memory_calls(url)["anonymous recommendations"]().json()["items"]
    assert len(items) == 10  # from the index in memory, not an empty list
    return seen


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def readiness(url: str) -> dict[str, object]:
    response = httpx.get(f"{url}/readyz", timeout=5)
    body: dict[str, object] = response.json()
    body["status"] = response.status_code
    return body


def recovered(url: str) -> bool:
    ready = readiness(url)
    ok = httpx.get(f"{url}/v1/users/1/recommendations", timeout=30).status_code == 200
    return ok and ready["status"] == 200 and ready["store_error"] is None


# --- connections and load ------------------------------------------------------------------


def test_idle_and_slow_clients_cost_a_connection_not_the_service(cluster: Cluster) -> None:
    port = cluster.server.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(250)]
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    trickle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IN_FLIGHT * 2)]
    try:
        for sock in slow:  # headers begun, never finished
            sock.sendall(b"GET /v1/users/1/recommendations HTTP/1.1\r\nHost: x\r\n")
        for sock in trickle:  # headers done, the body never (each would hold a request slot)
            sock.sendall(
                b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        started = time.monotonic()
        for _ in range(5):
            seen = assert_memory_calls_200_fast(cluster.url)
            response, seconds = timed(store_calls(cluster.url)["user recommendations"])
            assert response.status_code == 200 and seconds < LIMIT, (response.text, seconds)
        log.info("beside 300 idle/slow connections: %s, user recs %.3fs", seen, seconds)
        # The read deadline closes the slow ones and answers the trickling ones 408; the idle
        # ones wait for the keep-alive timeout.
        time.sleep(max(0.0, HEADER_TIMEOUT + 1.0 - (time.monotonic() - started)))
        for sock in slow:
            sock.settimeout(2)
            assert sock.recv(1024) == b""  # closed by the server
        for sock in trickle:
            sock.settimeout(2)
            assert sock.recv(1024).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in idle + slow + trickle:
            sock.close()


async def raw_get(port: int, path: str) -> tuple[int, float]:
    """One HTTP/1.1 GET on a fresh connection, with asyncio streams: cheap enough that 400 at
    once load the server rather than the test's own event loop (httpx would)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    status = int((await reader.readline()).split()[1])
    await reader.read()
    writer.close()
    return status, time.monotonic() - started


def curl_probe(url: str, count: int, out: list[tuple[int, float]]) -> None:
    """Health probes from another process, as a load balancer's are."""
    for _ in range(count):
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        code, seconds = result.stdout.split()
        out.append((int(code), float(seconds)))
        time.sleep(0.1)


def test_load_past_the_limit_and_the_pool_is_only_200s_and_fast_503s(cluster: Cluster) -> None:
    """400 clients at once on a route that reads Redis: each answer a 200 or a quick 503, and
    the health check answers in time throughout."""
    port = cluster.server.port
    probes: list[tuple[int, float]] = []
    prober = threading.Thread(target=curl_probe, args=(f"{cluster.url}/healthz", 8, probes))

    async def load() -> list[tuple[int, float]]:
        return await asyncio.gather(
            *(raw_get(port, f"/v1/users/{i % 600 + 1}/recommendations") for i in range(400))
        )

    prober.start()
    results = asyncio.run(load())
    prober.join(60)
    statuses = [status for status, _ in results]
    refused = sorted(seconds for status, seconds in results if status == 503)
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) > 0 and refused
    assert all(code == 200 for code, _ in probes), probes
    assert max(seconds for _, seconds in probes) < LIMIT, probes
    assert refused[int(len(refused) * 0.99)] < LIMIT, refused[-5:]
    served = sorted(seconds for status, seconds in results if status == 200)
    log.info(
        "400 at once: %d x 200 (p50 %.3fs, max %.3fs), %d x 503 (p50 %.3fs, max %.3fs), "
        "healthz max %.3fs",
        len(served),
        served[len(served) // 2],
        served[-1],
        len(refused),
        refused[len(refused) // 2],
        refused[-1],
        max(seconds for _, seconds in probes),
    )


# --- the store fails -----------------------------------------------------------------------


def test_a_frozen_store_gives_fast_503s_while_memory_serves(cluster: Cluster) -> None:
    """SIGSTOP: a failover or a long pause. Nothing waits longer than the deadline, readiness
    holds (the store is shared by every replica), and SIGCONT brings it all back."""
    url = cluster.url
    cluster.redis.freeze()
    try:
        time.sleep(0.2)
        log.info("frozen store, 503s: %s", assert_store_calls_503_fast(url))
        log.info("frozen store, from memory: %s", assert_memory_calls_200_fast(url))
        wait_until(lambda: readiness(url)["store_error"] is not None, 10, "readyz reports it")
        assert readiness(url)["status"] == 200
    finally:
        cluster.redis.thaw()
    log.info("recovered %.1fs after SIGCONT", wait_until(lambda: recovered(url), 15, "recovery"))


def test_a_killed_store_gives_fast_503s_and_loses_no_acknowledged_write(
    cluster: Cluster,
) -> None:
    url = cluster.url
    accepted = httpx.post(f"{url}/v1/users/durable/events", json={"movie_id": "318"}, timeout=30)
    assert accepted.status_code == 202
    cluster.redis.kill()
    try:
        log.info("killed store, 503s: %s", assert_store_calls_503_fast(url))
        log.info("killed store, from memory: %s", assert_memory_calls_200_fast(url))
        wait_until(lambda: readiness(url)["store_error"] is not None, 10, "readyz reports it")
        assert readiness(url)["status"] == 200
    finally:
        cluster.redis.start()  # same data directory
    log.info("recovered %.1fs after restart", wait_until(lambda: recovered(url), 15, "recovery"))
    history = httpx.get(f"{url}/v1/users/durable/recommendations", timeout=30).json()
    assert history["history_length"] == 1 and history["items"][0]["because"]["movie_id"] == "318"


def test_a_store_restarted_empty_never_empties_the_index(cluster: Cluster) -> None:
    url = cluster.url
    size = readiness(url)["index_size"]
    assert isinstance(size, int) and size > 9000
    cluster.redis.kill()
    cluster.redis.wipe()
    cluster.redis.start()

    wait_until(lambda: readiness(url)["catalog_lost"] is not None, 15, "readyz says so")
    for _ in range(3):  # and it stays that way: the refresher keeps refusing
        ready = readiness(url)
        assert ready["status"] == 200 and ready["index_size"] == size, ready
        assert_memory_calls_200_fast(url)
        time.sleep(1)
    assert "movie_recs_catalog_lost 1.0" in httpx.get(f"{url}/metrics").text

    seed(cluster.redis.url, BUNDLED_DATA)  # the re-import

    def resynced() -> bool:
        ready = readiness(url)
        return ready["catalog_lost"] is None and ready["index_size"] == size

    log.info("resynced %.1fs after the re-import", wait_until(resynced, 60, "resync"))
    assert readiness(url)["status"] == 200
    assert "movie_recs_catalog_lost 0.0" in httpx.get(f"{url}/metrics").text

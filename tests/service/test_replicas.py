"""Two real replica processes on one real Redis: webhooks, convergence, gaps."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor

from bench.harness.redis import redis_server_path
from bench.harness.servers import Server, server_env
from embeddings.data import BUNDLED_DATA
from service.ingest.webhook_signer import post_webhook
from service.store import open_store
from tests.support.service import SECRET, seed

pytestmark = pytest.mark.slow

# A server of its own: these tests kill and restart it.
replica_redis = factories.redis_proc(executable=redis_server_path(), port=None)  # type: ignore[arg-type]


def deliver(url: str, payload: object, msg_id: str) -> httpx.Response:
    return post_webhook(url, SECRET, payload, msg_id=msg_id)


def indexed(replica: Server, movie_id: str, version: int) -> bool:
    """Whether the replica has `movie_id` among its similar-able movies at `version`."""
    response = httpx.get(
        f"{replica.url}/v1/movies/{movie_id}/similar",
        params={"k": 1},
        headers={"x-min": str(version)},
        timeout=30,
    )
    return response.status_code == 200


def recommends(replica: Server, movie_id: str, min_version: int) -> list[str]:
    body = {
        "history": [{"movie_id": movie_id}],
        "k": 5,
        "exclude_seen": False,
        "min_index_version": min_version,
    }
    response = httpx.post(f"{replica.url}/v1/recommendations", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return [item["movie_id"] for item in response.json()["items"]]


def wait_until(predicate, timeout: float = 60, what: object = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not reached in time: {what() if callable(what) else what}")


@pytest.fixture
def cluster(replica_redis, tiny_model_dir: Path, tmp_path: Path) -> Iterator[tuple[Server, ...]]:  # type: ignore[no-untyped-def]
    from embeddings.data import BUNDLED_DATA

    url = f"redis://{replica_redis.host}:{replica_redis.port}/0"
    seed(url, BUNDLED_DATA)
    env = server_env(
        url,
        tiny_model_dir,
        MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
        MOVIE_RECS_FRESHNESS_WAIT_SECONDS="10",
        MOVIE_RECS_CHANGELOG_MAX_LEN="100",
    )
    replicas = tuple(Server(env, tmp_path / f"replica-{i}.log") for i in range(2))
    try:
        for replica in replicas:
            replica.wait_ready(timeout=180)
        yield replicas
    finally:
        for replica in replicas:
            replica.kill()


def metric(replica: Server, name: str) -> float:
    text = httpx.get(f"{replica.url}/metrics").text
    lines = [line for line in text.splitlines() if line.startswith(name)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_a_webhook_to_one_replica_reaches_both(cluster: tuple[Server, ...]) -> None:
    a, b = cluster
    new = {"id": "900001", "title": "The Recommender", "genres": ["Sci-Fi"], "year": 2026}
    seq = deliver(a.url, {"type": "movie.upserted", "data": new}, "msg_up").json()["last_seq"]

    for replica in cluster:
        assert recommends(replica, "900001", seq)[0] == "900001"

    gone = deliver(b.url, {"type": "movie.deleted", "data": {"id": "900001"}}, "msg_del")
    seq = gone.json()["last_seq"]
    for replica in cluster:
        similar = httpx.get(
            f"{replica.url}/v1/recommendations".replace(
                "/v1/recommendations", "/v1/movies/1/similar"
            ),
            params={"k": 100},
        ).json()
        recs = httpx.post(
            f"{replica.url}/v1/recommendations",
            json={"history": [{"movie_id": "1"}], "k": 100, "min_index_version": seq},
        ).json()
        assert recs["index_version"] >= seq
        assert "900001" not in {i["movie_id"] for i in similar["items"] + recs["items"]}
    assert metric(a, "movie_recs_change_applied_seconds_count") >= 2


def test_concurrent_identical_deliveries_apply_exactly_once(cluster: tuple[Server, ...]) -> None:
    payload = {"type": "movie.upserted", "data": {"id": "777777", "title": "Once"}}
    urls = [cluster[i % 2].url for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda u: deliver(u, payload, "msg_dup"), urls))

    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["last_seq"] for r in responses}) == 1
    seq = responses[0].json()["last_seq"]
    assert recommends(cluster[0], "777777", seq)[0] == "777777"
    head = httpx.get(f"{cluster[0].url}/readyz").json()["index_version"]
    assert head == seq  # nothing else was appended


def test_redis_restarted_empty_keeps_the_index_until_the_catalog_is_back(
    cluster: tuple[Server, ...],
    replica_redis: RedisExecutor,
) -> None:
    import redis

    client = redis.Redis(host=replica_redis.host, port=replica_redis.port)
    client.config_set("save", "")  # no snapshot on shutdown...
    config = client.config_get("dir") | client.config_get("dbfilename")
    dump = Path(str(config["dir"])) / str(config["dbfilename"])
    client.close()
    replica_redis.stop()
    dump.unlink(missing_ok=True)  # ...nor an older one: it comes back empty
    replica_redis.start()

    async def refill() -> None:
        store = await open_store(f"redis://{replica_redis.host}:{replica_redis.port}/0")
        from service.store import Movie, Upsert

        await store.apply_changes([Upsert(Movie(f"r{i}", f"Reborn {i}")) for i in range(3)])
        await store.close()

    asyncio.run(refill())

    def readiness(replica: Server) -> dict[str, object]:
        return httpx.get(f"{replica.url}/readyz").json()  # type: ignore[no-any-return]

    # Three movies where there were 9,742: the store lost its data, the catalog did not shrink.
    for replica in cluster:
        wait_until(
            lambda r=replica: readiness(r)["catalog_lost"] is not None,
            timeout=30,
            what=lambda r=replica: readiness(r),
        )
        assert readiness(replica)["ready"] and readiness(replica)["index_size"] == 9742

    seed(f"redis://{replica_redis.host}:{replica_redis.port}/0", BUNDLED_DATA)  # re-import
    asyncio.run(refill())

    def converged(replica: Server) -> bool:
        ready = readiness(replica)
        return bool(ready["ready"]) and ready["index_size"] == 9745 and not ready["catalog_lost"]

    for replica in cluster:
        wait_until(
            lambda r=replica: converged(r),
            timeout=90,
            what=lambda r=replica: httpx.get(f"{r.url}/readyz").text,
        )
        assert metric(replica, 'movie_recs_resyncs_total{reason="epoch changed"}') >= 1
        assert indexed(replica, "r0", 0)


def test_a_paused_replica_whose_cursor_was_trimmed_resyncs(
    cluster: tuple[Server, ...],
    replica_redis: RedisExecutor,
) -> None:
    a, b = cluster
    os.kill(b.process.pid, signal.SIGSTOP)
    try:
        # b may already be blocked in XREAD: the first write is answered into its socket.
        deliver(a.url, {"type": "movie.upserted", "data": {"id": "t0", "title": "T"}}, "msg_0")
        events = [
            {"type": "movie.upserted", "data": {"id": f"t{i}", "title": f"Trim {i}"}}
            for i in range(1, 150)
        ]
        deliver(a.url, {"events": events}, "msg_many")
        gone = {"type": "movie.deleted", "data": {"id": "1"}}
        last = deliver(a.url, gone, "msg_more").json()["last_seq"]

        async def trim() -> None:
            store = await open_store(f"redis://{replica_redis.host}:{replica_redis.port}/0")
            await store.trim_changes(keep_last=5)
            await store.close()

        asyncio.run(trim())
    finally:
        os.kill(b.process.pid, signal.SIGCONT)

    recommends(b, "t149", last)  # returns once b has applied `last`
    assert metric(b, 'movie_recs_resyncs_total{reason="change log trimmed') >= 1
    assert httpx.get(f"{b.url}/v1/movies/t100").json()["indexed"]
    assert httpx.get(f"{b.url}/v1/movies/1/similar").status_code == 404


@pytest.fixture
def snapshot_env(replica_redis, tiny_model_dir: Path, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Replicas that share a snapshot directory, on a freshly seeded Redis."""
    url = f"redis://{replica_redis.host}:{replica_redis.port}/0"
    seed(url, BUNDLED_DATA)
    return server_env(
        url,
        tiny_model_dir,
        MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
        MOVIE_RECS_FRESHNESS_WAIT_SECONDS="10",
        MOVIE_RECS_CHANGELOG_MAX_LEN="100",
        MOVIE_RECS_SNAPSHOT_DIR=str(tmp_path / "snapshots"),
    )


def started(env: dict[str, str], log: Path) -> Server:
    replica = Server(env, log)
    try:
        replica.wait_ready(timeout=180)
    except BaseException:
        replica.kill()
        raise
    return replica


def publishing_replica(env: dict[str, str], log: Path) -> Server:
    """A replica that full-synced and wrote its snapshot."""
    replica = started(env, log)
    wait_until(
        lambda: metric(replica, 'movie_recs_snapshots_published_total{outcome="ok"}') == 1,
        timeout=60,
        what="a snapshot written by the first replica",
    )
    return replica


def test_a_new_replica_starts_from_the_snapshot_and_tails_the_log(
    snapshot_env: dict[str, str], tmp_path: Path
) -> None:
    a = publishing_replica(snapshot_env, tmp_path / "a.log")
    try:
        new = {"id": "900002", "title": "After The Snapshot", "genres": ["Drama"], "year": 2026}
        deliver(a.url, {"type": "movie.upserted", "data": new}, "msg_after")
        gone = deliver(a.url, {"type": "movie.deleted", "data": {"id": "1"}}, "msg_gone")
        seq = gone.json()["last_seq"]
        b = started(snapshot_env, tmp_path / "b.log")
    finally:
        a.kill()
    try:
        assert metric(b, 'movie_recs_snapshot_loads_total{outcome="loaded"}') == 1
        assert metric(b, 'movie_recs_resyncs_total{reason="startup"}') == 0  # no full sync
        assert "from snapshot" in b.log.read_text()
        assert httpx.get(f"{b.url}/readyz").json()["index_version"] == seq
        assert recommends(b, "900002", seq)[0] == "900002"  # added after the snapshot
        assert httpx.get(f"{b.url}/v1/movies/1/similar").status_code == 404  # deleted after it
        popular = recommends(b, "2", seq) + recommends(b, "3", seq)
        assert "1" not in popular
        # The towers passed their probe at load: checked once ready, no wait for TensorFlow.
        assert metric(b, "movie_recs_model_checked") == 1
        assert metric(b, "movie_recs_model_check_failed") == 0
    finally:
        b.kill()


def _corrupt(directory: Path, _: str) -> None:
    (path,) = directory.glob("*.snap")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _foreign(_: Path, url: str) -> None:
    """The store restarted empty and was re-imported: a new epoch, so old positions mean
    nothing."""
    seed(url, BUNDLED_DATA)


def _trimmed(_: Path, url: str) -> None:
    async def many_changes() -> None:
        from service.store import Movie, Upsert

        store = await open_store(url, changelog_max_len=100)
        for i in range(10):  # 600 entries: past approximate (MAXLEN ~) trimming
            await store.apply_changes(
                [Upsert(Movie(f"x{i}-{j}", f"Trimmed {i} {j}")) for j in range(60)]
            )
        await store.close()

    asyncio.run(many_changes())


@pytest.mark.parametrize(
    ("damage", "outcome"),
    [(_corrupt, "corrupt"), (_foreign, "foreign"), (_trimmed, "stale")],
    ids=["corrupt", "foreign", "trimmed"],
)
def test_an_unusable_snapshot_falls_back_to_a_full_sync(
    snapshot_env: dict[str, str],
    tmp_path: Path,
    damage: Callable[[Path, str], None],
    outcome: str,
) -> None:
    publishing_replica(snapshot_env, tmp_path / "a.log").kill()
    damage(Path(snapshot_env["MOVIE_RECS_SNAPSHOT_DIR"]), snapshot_env["MOVIE_RECS_STORE_URL"])

    b = started(snapshot_env, tmp_path / "b.log")
    try:
        assert metric(b, f'movie_recs_snapshot_loads_total{{outcome="{outcome}"}}') == 1
        assert metric(b, 'movie_recs_snapshot_loads_total{outcome="loaded"}') == 0
        assert metric(b, 'movie_recs_resyncs_total{reason="startup"}') == 1
        if damage is _trimmed:
            assert indexed(b, "x2-59", 0)  # written after the snapshot, beyond the kept log
        ready = httpx.get(f"{b.url}/readyz").json()
        assert ready["ready"] and ready["index_size"] >= 9742
        wait_until(  # and it wrote a snapshot the next replica can use
            lambda: metric(b, 'movie_recs_snapshots_published_total{outcome="ok"}') == 1,
            timeout=60,
        )
    finally:
        b.kill()

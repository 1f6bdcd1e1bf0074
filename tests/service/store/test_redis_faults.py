"""The Redis store under faults: every failure is StoreUnavailable, within its deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from bench.harness.redis import RedisServer
from service.store import Movie, StoreUnavailable, Upsert, open_store

pytestmark = pytest.mark.anyio
DEADLINE = 0.5


@pytest.mark.parametrize("fault", ["frozen", "killed"])
async def test_each_call_raises_store_unavailable_within_the_deadline(
    own_redis: RedisServer, fault: str
) -> None:
    store = await open_store(own_redis.url, timeout=DEADLINE)
    await store.apply_changes([Upsert(Movie("1", "One"))])
    if fault == "frozen":
        own_redis.freeze()
    else:
        own_redis.kill()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get_movies": lambda: store.get_movies(["1"]),
        "recent_events": lambda: store.recent_events("u"),
        "apply_changes": lambda: store.apply_changes([Upsert(Movie("2", "Two"))]),
        "epoch": store.epoch,
        "head_seq": store.head_seq,
        "read_changes (blocking 1 s)": lambda: store.read_changes(0, block_seconds=1.0),
        "iter_movies": lambda: anext(aiter(store.iter_movies())),
    }
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call()
            allowed = DEADLINE + (1.0 if "blocking" in name else 0.0) + 0.5
            assert time.monotonic() - started < allowed, name
    finally:
        if fault == "frozen":
            own_redis.thaw()
        await store.close()


async def test_it_recovers_without_reopening(own_redis: RedisServer) -> None:
    store = await open_store(own_redis.url, timeout=DEADLINE)
    try:
        await store.apply_changes([Upsert(Movie("1", "One"))])
        own_redis.freeze()
        with pytest.raises(StoreUnavailable):
            await store.get_movies(["1"])
        own_redis.thaw()
        assert (await store.get_movies(["1"]))["1"].title == "One"
        own_redis.kill()
        with pytest.raises(StoreUnavailable):
            await store.get_movies(["1"])
        own_redis.start()  # same data directory: the acknowledged write is there
        assert (await store.get_movies(["1"]))["1"].title == "One"
    finally:
        await store.close()


async def test_more_calls_than_connections_wait_for_one_instead_of_failing(
    own_redis: RedisServer,
) -> None:
    store = await open_store(own_redis.url, timeout=2.0, max_connections=2)
    try:
        await store.apply_changes([Upsert(Movie("1", "One"))])
        found = await asyncio.gather(*(store.get_movies(["1"]) for _ in range(300)))
        assert all(f["1"].title == "One" for f in found)
    finally:
        await store.close()


async def test_an_unreachable_redis_is_named_without_its_password() -> None:
    from bench.harness.servers import free_port

    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailable) as raised:
        await open_store(url, timeout=DEADLINE)
    assert "hunter2" not in str(raised.value) and ":***@127.0.0.1" in str(raised.value)

"""Issue 23: a client writing events for endless new user ids cannot stop catalog writes.

With activity in a Redis of its own (an evicting policy, every history with a TTL), filling it
evicts old histories and every write keeps succeeding, the catalog's included. On one
`noeviction` Redis holding both, the same client makes every write fail, catalog webhooks too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from bench.harness.redis import RedisServer
from service.store import Event, Movie, Store, StoreUnavailable, Upsert, open_store

pytestmark = pytest.mark.anyio
BATCH = 1000  # new users a write
MAX_BATCHES = 300  # bounds the loops: 4 MB holds about 30 batches


def new_users(batch: int) -> dict[str, list[Event]]:
    return {f"client-{batch}-{i}": [Event("1", "watch", float(batch))] for i in range(BATCH)}


def limit_memory(url: str, maxmemory: int, policy: str) -> redis.Redis:
    client = redis.Redis.from_url(url)
    client.config_set("maxmemory", maxmemory)
    client.config_set("maxmemory-policy", policy)
    return client


@pytest.fixture
def two_servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer() as catalog, RedisServer() as activity:
        yield catalog, activity


async def test_a_full_activity_redis_evicts_and_catalog_writes_go_on(
    two_servers: tuple[RedisServer, RedisServer],
) -> None:
    catalog, activity = two_servers
    admin = limit_memory(activity.url, 4 * 1024 * 1024, "volatile-lru")
    store = await open_store(catalog.url, activity_url=activity.url)
    try:
        batch = 0
        while int(admin.info("stats")["evicted_keys"]) == 0:
            assert batch < MAX_BATCHES, "the activity Redis never evicted"
            await store.add_events_bulk(new_users(batch))
            batch += 1
        for more in range(batch, batch + 5):  # past the limit, writes still succeed
            await store.add_events_bulk(new_users(more))
        await store.add_events("latest", [Event("2", "watch", 2.0)])

        assert [e.movie_id for e in await store.recent_events("latest")] == ["2"]
        assert (await store.apply_changes([Upsert(Movie("1", "One"))])).applied == 1
        assert (await store.get_movies(["1"]))["1"].title == "One"
        memory = await store.memory_bytes()
        assert memory["activity"] <= 4.5 * 1024 * 1024
        assert await store.count_users() < (batch + 5) * BATCH  # the oldest were evicted
    finally:
        await store.close()
        admin.close()


async def test_on_one_noeviction_redis_the_same_client_stops_catalog_writes() -> None:
    """The contrast the issue describes: every write fails (a 503 at the API)."""
    with RedisServer() as server:
        used = int(redis.Redis.from_url(server.url).info("memory")["used_memory"])
        admin = limit_memory(server.url, used + 2 * 1024 * 1024, "noeviction")
        store: Store = await open_store(server.url)
        try:
            with pytest.raises(StoreUnavailable, match="OutOfMemoryError"):
                for batch in range(MAX_BATCHES):
                    await store.add_events_bulk(new_users(batch))
            # A failed big write frees its buffers: small ones fit again, until they do not.
            with pytest.raises(StoreUnavailable, match="OutOfMemoryError"):
                for user in range(MAX_BATCHES * BATCH):
                    await store.add_events(f"one-more-{user}", [Event("1", "watch", 1.0)])
            with pytest.raises(StoreUnavailable, match="OutOfMemoryError"):
                await store.apply_changes([Upsert(Movie("1", "One"))])
        finally:
            await store.close()
            admin.close()

"""Activity on a Redis Cluster, the catalog on one Redis: what the contract suite does not show
(a lost script cache, an outage of the cluster, memory by part)."""

from __future__ import annotations

import time

import pytest

from service.store import Event, Movie, StoreUnavailable, Upsert, open_store
from tests.support.redis_cluster import LocalRedisCluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # the cluster takes ~2 s to join
DEADLINE = 0.5


async def test_writes_survive_nodes_that_lost_their_scripts(
    redis_url: str, cluster_url: str, redis_cluster: LocalRedisCluster
) -> None:
    """A restarted or failed-over node has no scripts: writes load them again."""
    store = await open_store(redis_url, activity_url=cluster_url, activity_cluster=True)
    try:
        users = [f"u{i}" for i in range(30)]  # spread over the three nodes
        await store.add_events_bulk({user: [Event("1", "watch", 1.0)] for user in users})
        for index in range(3):
            with redis_cluster.node(index) as node:
                node.script_flush()
        await store.add_events_bulk({user: [Event("2", "watch", 2.0)] for user in users})
        await store.add_events("u0", [Event("3", "watch", 3.0)])
        assert [e.movie_id for e in await store.recent_events("u0")] == ["3", "2", "1"]
        assert await store.count_users() == 30 and await store.count_events() == 61
    finally:
        await store.close()


async def test_an_activity_outage_is_store_unavailable_and_spares_the_catalog(
    redis_url: str, cluster_url: str, redis_cluster: LocalRedisCluster
) -> None:
    store = await open_store(
        redis_url, activity_url=cluster_url, activity_cluster=True, timeout=DEADLINE
    )
    try:
        await store.add_events("u", [Event("1", "watch", 1.0)])
        redis_cluster.freeze()
        try:
            for call in (
                lambda: store.add_events("u", [Event("2", "watch", 2.0)]),
                lambda: store.recent_events("u"),
                lambda: store.erase_user("u"),
                store.count_users,
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < DEADLINE + 0.5
            assert (await store.apply_changes([Upsert(Movie("1", "One"))])).applied == 1
        finally:
            redis_cluster.thaw()
        # Recovered, without reopening. (The writes that timed out may have been applied or
        # not: a frozen node runs what reached its socket once it thaws.)
        await store.add_events("v", [Event("3", "watch", 3.0)])
        assert [e.movie_id for e in await store.recent_events("v")] == ["3"]
    finally:
        await store.close()


async def test_memory_is_reported_for_the_catalog_and_the_activity_apart(
    redis_url: str, cluster_url: str
) -> None:
    store = await open_store(redis_url, activity_url=cluster_url, activity_cluster=True)
    try:
        before = await store.memory_bytes()
        await store.add_events_bulk(
            {f"u{i}": [Event(str(n), "watch", float(n)) for n in range(50)] for i in range(300)}
        )
        after = await store.memory_bytes()
        assert set(after) == {"catalog", "activity"}
        assert after["activity"] - before["activity"] > 300 * 50 * 17  # the records, at least
        assert abs(after["catalog"] - before["catalog"]) < 300 * 50 * 17
    finally:
        await store.close()

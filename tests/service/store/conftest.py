"""Fixtures of the store tests: a Redis Cluster for activity, and stores whose activity lives in
each place it can (the SQLite file, the catalog's Redis, a Redis Cluster beside it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from service.store import Store, open_store
from tests.support.redis_cluster import LocalRedisCluster
from tests.support.store import OpenActivity


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """Three nodes joined once per session (about 2 s); tests get it emptied (`cluster_url`)."""
    with LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: LocalRedisCluster) -> str:
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(params=["sqlite", "redis", pytest.param("cluster", marks=pytest.mark.slow)])
async def open_activity(request: pytest.FixtureRequest) -> AsyncIterator[OpenActivity]:
    """`await open_activity(**open_store_options)`: a store (closed after the test) whose
    activity is in a SQLite file, on the catalog's Redis, or on a Redis Cluster with the catalog
    on a single Redis: the activity half of the contract runs on all three."""
    if request.param == "cluster":
        url = str(request.getfixturevalue("redis_url"))
        where = {"activity_url": request.getfixturevalue("cluster_url"), "activity_cluster": True}
    else:
        url = str(request.getfixturevalue(f"{request.param}_url"))
        where = {}
    opened: list[Store] = []

    async def open_(**options: object) -> Store:
        store = await open_store(url, **{"activity_max_events": 5, **where, **options})
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def activity_store(open_activity: OpenActivity) -> Store:
    """A store keeping 5 events a user, its activity in each place in turn."""
    return await open_activity()

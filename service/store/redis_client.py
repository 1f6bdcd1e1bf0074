"""Redis clients as the store opens them (pools, retries, socket deadlines), for one node or a
Redis Cluster, and `deadline`, which every call runs inside: past it, or on any failure of
Redis, a call raises `StoreUnavailable`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.errors import StoreError, StoreUnavailable

MAX_BLOCK_SECONDS = 5.0  # the longest blocking read; the socket timeout must outlast it
# Connections beyond one per in-flight request: the refresher's blocking read and its writes.
SPARE_CONNECTIONS = 4


def _retry() -> Retry:
    # Servers close idle connections (Redis `timeout`, failovers): retrying is safe because
    # every write here is idempotent (unchanged upserts, repeated deletes and identical events
    # are no-ops); the retries fit inside the call's deadline, which cuts them short.
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)


@dataclass(frozen=True, slots=True)
class Bounds:
    """What every client of a store shares: its password, each call's deadline, and how many
    calls may run at once."""

    password: str | None
    timeout: float
    max_connections: int


def single_node(url: str, bounds: Bounds, *, block: float = 0.0) -> Any:
    """A client of one Redis. Its pool blocks: past `max_connections` a call waits for a free
    connection (within its deadline) instead of failing at once. `block`: the longest blocking
    read it makes. Any: redis-py types every reply as a union of all it could be."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=bounds.max_connections + SPARE_CONNECTIONS,
        timeout=bounds.timeout,
        socket_connect_timeout=bounds.timeout,
        socket_timeout=bounds.timeout + block,
        socket_keepalive=True,
        health_check_interval=15,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        password=bounds.password,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def cluster(url: str, bounds: Bounds) -> Any:
    """A Redis Cluster client (`url`: any one node; it finds the others). Its pools do not block:
    past `max_connections` per node a call fails (StoreUnavailable), which the in-flight limit
    keeps from happening (one activity call per request at a time)."""
    try:
        return RedisCluster.from_url(
            url,
            max_connections=bounds.max_connections + SPARE_CONNECTIONS,
            socket_connect_timeout=bounds.timeout,
            socket_timeout=bounds.timeout,
            socket_keepalive=True,
            health_check_interval=15,
            retry=_retry(),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            password=bounds.password,
        )
    except (RedisClusterException, ValueError) as exc:  # a database other than 0, a socket path
        raise StoreError(f"activity_url {url!r} cannot be a Redis Cluster: {exc}") from None


@contextlib.asynccontextmanager
async def deadline(what: str, seconds: float) -> AsyncIterator[None]:
    """Run a call within `seconds`; any failure of Redis becomes StoreUnavailable."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise StoreUnavailable(f"Redis did not answer {what} within {seconds:g}s") from None
    except (RedisError, RedisClusterException, OSError) as exc:
        # The kind, not the text: clients see this message, and the text names hosts.
        raise StoreUnavailable(f"Redis {what} failed ({type(exc).__name__})") from exc


def redacted(url: str) -> str:
    """The URL without its password: error messages reach logs and clients."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def ping(client: Any, url: str, seconds: float, *, is_cluster: bool = False) -> None:
    """At startup: the operator reads this message, so it says where (without the password)
    and why."""
    where = redacted(url)
    try:
        async with asyncio.timeout(seconds):
            if is_cluster:
                await client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await client.ping()
    except TimeoutError:
        raise StoreUnavailable(f"Redis at {where} did not answer within {seconds:g}s") from None
    except (RedisError, RedisClusterException, OSError) as exc:
        raise StoreUnavailable(f"cannot reach Redis at {where}: {exc}") from None

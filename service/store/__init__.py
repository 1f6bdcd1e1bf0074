"""The store, chosen by URL scheme: `redis://` (production) or `sqlite:///` (embedded default)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from service.store.base import Store
from service.store.errors import InvalidRecord, PromotionRaced, StoreError, StoreUnavailable
from service.store.records import (
    UNCHECKED,
    ChangeEntry,
    Delete,
    Event,
    Movie,
    MovieChange,
    Promotion,
    Unchecked,
    Upsert,
    WriteResult,
)

if TYPE_CHECKING:
    from service.config import Settings

__all__ = [
    "UNCHECKED",
    "ChangeEntry",
    "Delete",
    "Event",
    "InvalidRecord",
    "Movie",
    "MovieChange",
    "Promotion",
    "PromotionRaced",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Unchecked",
    "Upsert",
    "WriteResult",
    "open_store",
    "store_from_settings",
]


HISTORY_TTL_SECONDS = 180 * 24 * 3600.0  # the settings' default (history_ttl_days)
REDIS_SCHEMES = ("redis", "rediss", "unix")


async def store_from_settings(settings: Settings) -> Store:
    """The store as the settings describe it (URLs, bounds, password)."""
    password = settings.store_password.get_secret_value() if settings.store_password else None
    return await open_store(
        settings.store_url,
        activity_max_events=settings.activity_max_events,
        changelog_max_len=settings.changelog_max_len,
        history_ttl_seconds=settings.history_ttl_days * 24 * 3600,
        activity_url=settings.activity_url,
        activity_cluster=settings.activity_cluster,
        password=password,
        timeout=settings.store_timeout_seconds,
        max_connections=settings.max_in_flight,
    )


async def open_store(
    url: str,
    *,
    activity_max_events: int = 1000,
    changelog_max_len: int = 100_000,
    history_ttl_seconds: float = HISTORY_TTL_SECONDS,
    activity_url: str | None = None,
    activity_cluster: bool = False,
    password: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - the store's per-call deadline, not this call's
    max_connections: int = 64,
) -> Store:
    """Open, ping and (once) upgrade the store; StoreError with a readable message on failure.

    `timeout` is each Redis call's deadline (the API uses its 1 s setting; tools and tests
    opening a store directly get more room); `max_connections` the calls that may run at once.
    `activity_url`: a Redis (a Redis Cluster with `activity_cluster`) of its own for user
    histories, beside a Redis `url`; `password` is the default of both.
    """
    scheme = urlsplit(url).scheme
    if scheme not in (*REDIS_SCHEMES, "sqlite"):
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {url!r}: use redis://host:port/db "
            "or sqlite:///path/to/file.db"
        )
    _check_activity(scheme, activity_url, activity_cluster)
    store: Store
    if scheme in REDIS_SCHEMES:
        from service.store.redis import RedisStore

        store = RedisStore(
            url,
            activity_max_events=activity_max_events,
            changelog_max_len=changelog_max_len,
            history_ttl_seconds=history_ttl_seconds,
            activity_url=activity_url,
            activity_cluster=activity_cluster,
            password=password,
            timeout=timeout,
            max_connections=max_connections,
        )
    else:
        from service.store.sqlite import SQLiteStore

        store = SQLiteStore(
            url,
            activity_max_events=activity_max_events,
            changelog_max_len=changelog_max_len,
            history_ttl_seconds=history_ttl_seconds,
        )
    try:
        await store.ping()
        await store.upgrade()
    except StoreError:
        await store.close()
        raise
    return store


def _check_activity(scheme: str, activity_url: str | None, activity_cluster: bool) -> None:
    """A separate activity store is a Redis beside a Redis catalog; anything else is refused
    before anything is opened."""
    if activity_url is None:
        if activity_cluster:
            raise StoreError("activity_cluster is set but activity_url is not: name the cluster")
        return
    if scheme not in REDIS_SCHEMES:
        raise StoreError(
            "activity_url is set but store_url is not a Redis: a separate activity store goes "
            "with a redis:// store_url (unset activity_url to keep activity in the SQLite file)"
        )
    activity_scheme = urlsplit(activity_url).scheme
    allowed = ("redis", "rediss") if activity_cluster else REDIS_SCHEMES
    if activity_scheme not in allowed:
        raise StoreError(
            f"activity_url scheme {activity_scheme!r} is not one of {', '.join(allowed)}"
        )

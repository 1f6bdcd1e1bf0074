"""The store, chosen by URL scheme: `redis://` (production) or `sqlite:///` (embedded default)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from service.store.base import Store
from service.store.errors import InvalidRecord, StoreError, StoreUnavailable
from service.store.records import (
    ChangeEntry,
    Delete,
    Event,
    Movie,
    MovieChange,
    Upsert,
    WriteResult,
)

if TYPE_CHECKING:
    from service.config import Settings

__all__ = [
    "ChangeEntry",
    "Delete",
    "Event",
    "InvalidRecord",
    "Movie",
    "MovieChange",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Upsert",
    "WriteResult",
    "open_store",
    "store_from_settings",
]


async def store_from_settings(settings: Settings) -> Store:
    """The store as the settings describe it (URL, bounds, password)."""
    password = settings.store_password.get_secret_value() if settings.store_password else None
    return await open_store(
        settings.store_url,
        activity_max_events=settings.activity_max_events,
        changelog_max_len=settings.changelog_max_len,
        password=password,
        timeout=settings.store_timeout_seconds,
        max_connections=settings.max_in_flight,
    )


async def open_store(
    url: str,
    *,
    activity_max_events: int = 200,
    changelog_max_len: int = 100_000,
    password: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - the store's per-call deadline, not this call's
    max_connections: int = 64,
) -> Store:
    """Open, ping and (once) upgrade the store; StoreError with a readable message on failure.

    `timeout` is each Redis call's deadline (the API uses its 1 s setting; tools and tests
    opening a store directly get more room); `max_connections` the calls that may run at once.
    """
    scheme = urlsplit(url).scheme
    store: Store
    if scheme in ("redis", "rediss", "unix"):
        from service.store.redis import RedisStore

        store = RedisStore(
            url,
            activity_max_events=activity_max_events,
            changelog_max_len=changelog_max_len,
            password=password,
            timeout=timeout,
            max_connections=max_connections,
        )
    elif scheme == "sqlite":
        from service.store.sqlite import SQLiteStore

        store = SQLiteStore(
            url, activity_max_events=activity_max_events, changelog_max_len=changelog_max_len
        )
    else:
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {url!r}: use redis://host:port/db "
            "or sqlite:///path/to/file.db"
        )
    try:
        await store.ping()
        await store.upgrade()
    except StoreError:
        await store.close()
        raise
    return store

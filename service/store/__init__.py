"""The store, chosen by URL scheme: `redis://` (production) or `sqlite:///` (embedded default)."""

from __future__ import annotations

from urllib.parse import urlsplit

from service.store.base import (
    ChangeEntry,
    Delete,
    Event,
    InvalidRecord,
    Movie,
    MovieChange,
    Store,
    StoreError,
    Upsert,
    WriteResult,
)

__all__ = [
    "ChangeEntry",
    "Delete",
    "Event",
    "InvalidRecord",
    "Movie",
    "MovieChange",
    "Store",
    "StoreError",
    "Upsert",
    "WriteResult",
    "open_store",
]


async def open_store(
    url: str, *, activity_max_events: int = 200, changelog_max_len: int = 100_000
) -> Store:
    """Open and ping the store; raise StoreError with a readable message on any failure."""
    scheme = urlsplit(url).scheme
    store: Store
    if scheme in ("redis", "rediss", "unix"):
        from service.store.redis import RedisStore

        store = RedisStore(
            url, activity_max_events=activity_max_events, changelog_max_len=changelog_max_len
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
    except StoreError:
        await store.close()
        raise
    return store

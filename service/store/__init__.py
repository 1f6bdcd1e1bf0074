"""The store, chosen by URL scheme: `redis://` (production) or `sqlite:///` (embedded default)."""

from __future__ import annotations

from typing import TYPE_CHECKING
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
    )


async def open_store(
    url: str,
    *,
    activity_max_events: int = 200,
    changelog_max_len: int = 100_000,
    password: str | None = None,
) -> Store:
    """Open and ping the store; raise StoreError with a readable message on any failure."""
    scheme = urlsplit(url).scheme
    store: Store
    if scheme in ("redis", "rediss", "unix"):
        from service.store.redis import RedisStore

        store = RedisStore(
            url,
            activity_max_events=activity_max_events,
            changelog_max_len=changelog_max_len,
            password=password,
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

"""Helpers of the store tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service.store import Store

# `open_activity(**open_store_options)` (tests/service/store/conftest.py): a store whose
# activity is in a SQLite file, on the catalog's Redis or on a Redis Cluster
OpenActivity = Callable[..., Awaitable[Store]]

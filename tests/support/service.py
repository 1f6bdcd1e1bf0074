"""Helpers of the service tests (and of the Lambda handler's, which compare with the API)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from service.ingest.importer import import_movielens
from service.ingest.movielens import read_movielens
from service.ingest.webhook_signer import CATALOG_WEBHOOK_PATH, signed_headers
from service.store import open_store

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the webhook secret of the tests' servers
URL = CATALOG_WEBHOOK_PATH

# `make_client(**setting_overrides)`: a started app on a copy of the seeded store (conftest.py)
MakeClient = Callable[..., TestClient]


def signed(
    payload: object, *, secret: str = SECRET, msg_id: str = "msg_1", at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery's body and headers, signed `at` a unix time (now), to send or to tamper with
    (a valid one is sent with `post_webhook`)."""
    body = json.dumps(payload).encode()
    when = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    return body, signed_headers(secret, body, msg_id, when)


def seed(url: str, data: Path) -> None:
    """Empty the store at `url` and import the MovieLens directory `data` into it."""

    async def run() -> None:
        store = await open_store(url)
        await store.clear()
        await import_movielens(store, read_movielens(data))
        await store.close()

    asyncio.run(run())

"""Signing a catalog webhook the way a sender does (Standard Webhooks), for `send-webhook`,
the benchmarks and `movie-recs lambda-fit`. The receiving side is
`service.ingest.webhook.verify`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(
    secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """The headers that make `body` a delivery signed with `secret` (`whsec_…`), sent `at` (now).

    Raises what `standardwebhooks` raises for a malformed secret, and UnicodeDecodeError for a
    body that is not UTF-8 (the library signs text).
    """
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = at or datetime.now(tz=UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }

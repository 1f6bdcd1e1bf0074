"""Sending a catalog webhook the way a sender does (Standard Webhooks): signed, then POSTed
with a deadline. `movie-recs send-webhook`, the benchmarks, `lambdafit` and the tests all send
through `post_webhook`. The receiving side is `service.ingest.webhook.verify`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

CATALOG_WEBHOOK_PATH = "/v1/webhooks/catalog"


class SigningError(ValueError):
    """A delivery that cannot be signed: a malformed secret, or a body that is not UTF-8."""


def signed_headers(
    secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """The headers that make `body` a delivery signed with `secret` (`whsec_…`), sent `at` (now).

    Raises SigningError for a malformed secret or a body that is not UTF-8 (the library signs
    text).
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise SigningError("the body is not UTF-8 text") from None
    try:
        signer = Webhook(secret)
    except Exception as exc:  # a malformed secret: the library raises several kinds
        raise SigningError(f"invalid webhook secret: {exc}") from None
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = at or datetime.now(tz=UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, text),
    }


def post_webhook(
    base_url: str,
    secret: str,
    payload: object,
    *,
    msg_id: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
    """Sign `payload` with `secret` and POST it to the catalog webhook of the service at
    `base_url`; the response, whatever its status.

    `payload`: the exact bytes to send (a file's), or anything `json.dumps` takes. `timeout`:
    seconds allowed for each step (connect, send, each read), so a stalled service fails the
    call instead of hanging it. `client`: an open one to send with instead (keep-alive, its
    headers, its own timeout; a TestClient), `base_url` then joined to its own. Raises
    SigningError before anything is sent, and httpx.HTTPError when the service cannot be
    reached in time.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed_headers(secret, body, msg_id)
    url = base_url.rstrip("/") + CATALOG_WEBHOOK_PATH
    if client is not None:
        return client.post(url, content=body, headers=headers)
    return httpx.post(url, content=body, headers=headers, timeout=timeout)

"""Catalog-update webhooks: Standard Webhooks signature check and the payload's schema.

Verification runs on the raw body before any JSON parsing, with every configured secret (so a
secret can rotate: add the new one, switch the sender, remove the old one).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from service.jsonbody import BadJSON, load_json
from service.store.fields import Genre, LinkId, MovieId, Tag, Title, Year
from service.store.records import MAX_LIST_ITEMS, Delete, Movie, MovieChange, Upsert

MAX_WEBHOOK_ID = 256


class WebhookRejected(Exception):
    """Carries the HTTP status and a message saying exactly what was wrong."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class MovieData(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    id: MovieId
    title: Title
    genres: list[Genre] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    year: Year | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    imdb_id: LinkId | None = None
    tmdb_id: LinkId | None = None


class DeletedData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: MovieId


class Upserted(BaseModel):
    type: Literal["movie.upserted"]
    data: MovieData


class Deleted(BaseModel):
    type: Literal["movie.deleted"]
    data: DeletedData


CatalogEvent = Annotated[Upserted | Deleted, Field(discriminator="type")]


class CatalogBatch(BaseModel):
    events: list[CatalogEvent] = Field(min_length=1)


SingleEvent: TypeAdapter[Upserted | Deleted] = TypeAdapter(CatalogEvent)


class WebhookAccepted(BaseModel):
    webhook_id: str
    duplicate: bool = Field(description="A replay of an id already accepted: nothing applied.")
    events: int
    applied: int = Field(description="Events that changed the catalog (identical ones do not).")
    first_seq: int | None
    last_seq: int | None


class BadWebhookSecret(ValueError):
    """A configured secret the library cannot use: startup stops with this one line."""


def load_secrets(secrets: Sequence[str]) -> list[Webhook]:
    """The configured secrets as verifiers, parsed once at startup: an empty or malformed one
    (`whsec_` alone) would otherwise fail every delivery with an error of the library's."""
    verifiers = []
    for position, secret in enumerate(secrets, start=1):
        try:
            verifiers.append(Webhook(secret))
        except (EmptyWebhookSecretError, ValueError, binascii.Error, RuntimeError):
            raise BadWebhookSecret(
                f"MOVIE_RECS_WEBHOOK_SECRETS: secret #{position} is empty or not base64 "
                "(want 'whsec_' followed by base64 bytes)"
            ) from None
    return verifiers


def verify(raw: bytes, headers: Mapping[str, str], verifiers: Sequence[Webhook]) -> str:
    """Return the webhook id when one of `verifiers` (`load_secrets`) signed exactly these
    bytes, recently."""
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not headers.get(h)
    ]
    if missing:
        raise WebhookRejected(400, f"missing header(s): {', '.join(missing)}")
    webhook_id = headers["webhook-id"]
    if len(webhook_id) > MAX_WEBHOOK_ID:
        raise WebhookRejected(400, f"webhook-id longer than {MAX_WEBHOOK_ID} characters")
    reasons: set[str] = set()
    for verifier in verifiers:
        try:
            verifier.verify(raw, dict(headers), json_parse=False)
            return webhook_id
        except WebhookVerificationError as exc:
            reasons.add(str(exc))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            reasons.add("malformed webhook-signature or body")
    if "Message timestamp too old" in reasons:
        raise WebhookRejected(401, "webhook-timestamp is more than 5 minutes old")
    if "Message timestamp too new" in reasons:
        raise WebhookRejected(401, "webhook-timestamp is more than 5 minutes in the future")
    if "Invalid Signature Headers" in reasons:
        raise WebhookRejected(400, "webhook-timestamp is not a unix timestamp")
    if "malformed webhook-signature or body" in reasons:
        raise WebhookRejected(400, "malformed webhook-signature header or non-UTF-8 body")
    raise WebhookRejected(401, "no webhook-signature matches the body with a configured secret")


def digest(raw: bytes) -> str:
    """What the dedupe claim keeps of a delivery: a retry carries the same bytes."""
    return hashlib.sha256(raw).hexdigest()


def parse_changes(raw: bytes, max_events: int) -> list[MovieChange]:
    """The payload as store changes, in order; any invalid event rejects the whole batch."""
    try:
        document = load_json(raw)
    except BadJSON as exc:
        raise WebhookRejected(400, str(exc)) from None
    events = document.get("events") if isinstance(document, dict) else None
    if isinstance(events, list) and len(events) > max_events:
        raise WebhookRejected(413, f"more than {max_events} events in one delivery")
    try:
        parsed: CatalogBatch | Upserted | Deleted = (
            CatalogBatch.model_validate(document)
            if isinstance(document, dict) and "events" in document
            else SingleEvent.validate_python(document)
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WebhookRejected(
            422, f"invalid payload at {where or 'top level'}: {first['msg']}"
        ) from None
    items = parsed.events if isinstance(parsed, CatalogBatch) else [parsed]
    changes: list[MovieChange] = []
    for event in items:
        if isinstance(event, Upserted):
            m = event.data
            movie = Movie(
                m.id,
                m.title,
                tuple(m.genres),
                m.year,
                tuple(m.tags),
                imdb_id=m.imdb_id,
                tmdb_id=m.tmdb_id,
            )
            changes.append(Upsert(movie))
        else:
            changes.append(Delete(event.data.id))
    return changes

"""`POST /v1/webhooks/catalog`: verify, validate, and write in one atomic store step."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from service.api.deps import AppStateDep
from service.api.errors import responses
from service.ingest.webhook import WebhookAccepted, WebhookRejected, digest, parse_changes, verify

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/catalog",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": WebhookAccepted, "description": "A replayed webhook-id: nothing applied."},
        **responses(
            400, 401, 413, 422, 503, described={409: "The webhook-id was used for another body."}
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "example": {
                        "type": "movie.upserted",
                        "data": {"id": "200001", "title": "New Film", "genres": ["Drama"]},
                    }
                }
            },
        }
    },
)
async def catalog_webhook(
    app_state: AppStateDep, request: Request, response: Response
) -> WebhookAccepted:
    """Signed with Standard Webhooks. Answers before any model or index work: the refresher
    of every replica picks the change up from the change log."""
    verifiers = app_state.access.webhooks
    if not verifiers:
        raise HTTPException(503, "webhooks are disabled: MOVIE_RECS_WEBHOOK_SECRETS is not set")
    raw = await request.body()
    try:
        webhook_id = verify(raw, request.headers, verifiers)
        changes = parse_changes(raw, app_state.settings.webhook_max_movies)
    except WebhookRejected as exc:
        raise HTTPException(exc.status, exc.detail) from None
    result = await app_state.store.apply_changes(
        changes,
        dedupe_key=webhook_id,
        dedupe_digest=digest(raw),
        dedupe_ttl_seconds=app_state.settings.webhook_dedupe_ttl_seconds,
    )
    if result.conflict:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"webhook-id {webhook_id!r} was already used for a different body; "
            "nothing was applied (a retry must resend the same bytes, new content a new id)",
        )
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
    return WebhookAccepted(
        webhook_id=webhook_id,
        duplicate=result.duplicate,
        events=len(changes),
        applied=0 if result.duplicate else result.applied,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
    )

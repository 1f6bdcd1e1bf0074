"""Recording what a user watched, rated or disliked; the next recommendation reflects it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status

from service.api.deps import AppStateDep
from service.api.errors import ERRORS, responses
from service.api.params import IdPath
from service.api.schemas import EventBatch, EventIn, EventsAccepted
from service.experiments.attribution import attribute
from service.store import Event

router = APIRouter(tags=["events"])


@router.post(
    "/users/{user_id}/events",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**ERRORS, **responses(described={404: "Unknown or deleted movie."})},
)
async def add_events(
    app_state: AppStateDep,
    user_id: IdPath,
    body: Annotated[EventIn | EventBatch, Body(examples=[{"movie_id": "1", "kind": "watch"}])],
) -> EventsAccepted:
    """One event or a batch. All are checked before any is stored: a bad one stores none.
    Each may name the `recommendation_id` of the list that led to it; without one, it is
    attributed to the latest list that showed its movie to this user within the window."""
    store = app_state.store
    items = body.events if isinstance(body, EventBatch) else [body]
    ids = list(dict.fromkeys(e.movie_id for e in items))
    movies = await store.get_movies(ids)
    unknown = [mid for mid in ids if mid not in movies or movies[mid].deleted]
    if unknown:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"not in the catalog: {', '.join(unknown[:10])}; no event was stored",
        )
    events = [Event(e.movie_id, e.kind, e.at(), e.rating) for e in items]
    await store.add_events(user_id, events)
    window = app_state.settings.attribution_window_hours * 3600
    pairs = [(event, e.recommendation_id) for event, e in zip(events, items, strict=True)]
    attributed = await attribute(store, app_state.metrics, user_id, pairs, window)
    return EventsAccepted(user_id=user_id, accepted=len(items), attributed=len(attributed))

"""Users: a few sample users to start from, one user's recent events with titles, and erasing
a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.api.deps import RecommenderDep, StoreDep
from service.api.errors import ERRORS
from service.api.params import IdPath
from service.api.schemas import (
    MAX_HISTORY,
    SampleUser,
    SampleUsers,
    UserEvent,
    UserEvents,
)

router = APIRouter(tags=["users"])
MAX_SAMPLE = 50


@router.get("/users", responses=ERRORS)
async def sample_users(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_SAMPLE)] = 8
) -> SampleUsers:
    """A spread of users with activity, from light to heavy histories (not a full listing)."""
    found = sorted(await store.sample_users(limit * 5), key=lambda u: (u[1], u[0]))
    if len(found) > limit:
        step = (len(found) - 1) / max(limit - 1, 1)
        found = [found[round(i * step)] for i in range(limit)]
    return SampleUsers(users=[SampleUser(user_id=u, events=n) for u, n in found])


@router.get("/users/{user_id}/events", responses=ERRORS)
async def user_events(
    store: StoreDep,
    recommender: RecommenderDep,
    user_id: IdPath,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 20,
) -> UserEvents:
    """The user's newest events with titles (from memory; the store for movies not indexed)."""
    events = await store.recent_events(user_id, limit)
    live = recommender.live()
    missing = [e.movie_id for e in events if e.movie_id not in live]
    stored = await store.get_movies(missing) if missing else {}
    items = []
    for event in events:
        found = live.get(event.movie_id)
        meta = found[1] if found else None
        movie = stored.get(event.movie_id)
        items.append(
            UserEvent(
                movie_id=event.movie_id,
                title=meta.title if meta else movie.title if movie else None,
                year=meta.year if meta else movie.year if movie else None,
                genres=list(meta.genres if meta else movie.genres if movie else ()),
                kind=event.kind,
                rating=event.rating,
                timestamp=event.timestamp,
            )
        )
    return UserEvents(user_id=user_id, items=items)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERRORS,
)
async def erase_user(store: StoreDep, user_id: IdPath) -> None:
    """Forget the user: their history is gone at once (204 whether or not there was one)."""
    await store.erase_user(user_id)

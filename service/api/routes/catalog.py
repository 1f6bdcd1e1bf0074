"""The catalog as this replica sees it: versions, size, lag and the changes it applied."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import AppStateDep
from service.api.errors import ERRORS
from service.api.schemas import CatalogChange, CatalogStatus
from service.index.titles import genres_of

router = APIRouter(tags=["catalog"])
MAX_CHANGES = 100


@router.get("/catalog", responses=ERRORS)
async def catalog_status(
    app_state: AppStateDep,
    after: Annotated[
        int | None,
        Query(ge=0, description="Changes with a later sequence; default: the newest `limit`."),
    ] = None,
    limit: Annotated[int, Query(ge=0, le=MAX_CHANGES)] = 10,
) -> CatalogStatus:
    """Cheap enough to poll: one change-log read, bounded by `limit`, only when there is news."""
    index = app_state.index
    serving = app_state.recommender.serving()
    live = serving.live
    applied = live.index_version
    start = max(0, applied - limit) if after is None else min(after, applied)
    changes: list[CatalogChange] = []
    if limit and start < applied:
        entries = [e for e in await app_state.store.read_changes(start, limit) if e.seq <= applied]
        movies = await app_state.store.get_movies(list({e.movie_id for e in entries}))
        for entry in entries:
            movie = movies.get(entry.movie_id)
            changes.append(
                CatalogChange(
                    seq=entry.seq,
                    op=entry.op,
                    movie_id=entry.movie_id,
                    title=movie.title if movie else None,
                    year=movie.year if movie else None,
                    accepted_at=entry.accepted_at,
                    indexed=entry.movie_id in live,
                )
            )
    return CatalogStatus(
        model_version=serving.towers.version,
        index_version=applied,
        index_size=len(live),
        index_kind=live.base.kind,
        head=max(index.head, applied),
        lag=max(0, index.head - applied),
        caught_up=index.caught_up,
        genres=await genres_of(live),
        changes=changes,
    )

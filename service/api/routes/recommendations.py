"""Recommendations for a known user (history from the store) or an anonymous session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError

from service.api.deps import AppStateDep, require_index_version
from service.api.errors import VERSIONED_ERRORS
from service.api.exposure import show
from service.api.params import DiversityQuery, IdPath, MaxPerGenreQuery, YearQuery
from service.api.schemas import (
    MAX_GENRES,
    MAX_K,
    AnonymousRequest,
    Recommendations,
    Shown,
    response_body,
)
from service.api.state import AppState
from service.recommender import Filters, Result, UnknownGenres
from service.store import Event
from service.store.history import History

router = APIRouter(tags=["recommendations"])


class JSONBody(Response):
    media_type = "application/json"


NO_FILTERS = Filters()


def make_filters(
    app_state: AppState,
    genres: list[str] | None,
    year_min: int | None,
    year_max: int | None,
    where: str = "query",
) -> Filters:
    """The query's filters; 400 for an empty year range, 422 naming the known genres for an
    unknown one (before any store read)."""
    if not genres and year_min is None and year_max is None:
        return NO_FILTERS  # the common case, built once
    wanted = frozenset(g.strip() for part in genres or [] for g in part.split(",") if g.strip())
    if year_min is not None and year_max is not None and year_min > year_max:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "year_min is greater than year_max")
    filters = Filters(wanted, year_min, year_max)
    try:
        app_state.recommender.check(filters)
    except UnknownGenres as exc:  # shaped as every other invalid field is
        error = {"loc": (where, "genres"), "msg": str(exc), "type": "value_error", "input": genres}
        raise RequestValidationError([error]) from None
    return filters


async def recommend(
    app_state: AppState,
    history: History,
    k: int,
    filters: Filters,
    exclude_seen: bool,
    subject: str | None,
    surface: str,
    diversity: float = 0.0,
    max_per_genre: int | None = None,
) -> tuple[Result, Shown]:
    """On the loop when quick (~1-2 ms at 1M: unfiltered, or a filter whose admitted rows are
    known and few); else in a worker thread under a deadline. The subject's variant (when an
    experiment runs) chooses the strategy or the model; the list is recorded as shown."""
    recommender = app_state.recommender
    assigned, serving = app_state.tracking.assign(subject)
    popular = assigned is not None and assigned.variant.strategy == "popular"
    args = (history, k, filters, exclude_seen, popular, diversity, max_per_genre, serving)
    if recommender.quick(filters):
        result = recommender.recommend(*args)
    else:
        result = await app_state.offload.run(recommender.recommend, *args)
    shown = show(
        app_state, subject, surface, result.strategy, result.model_version, result.items, assigned
    )
    return result, shown


@router.get(
    "/users/{user_id}/recommendations", responses=VERSIONED_ERRORS, response_model=Recommendations
)
async def user_recommendations(
    app_state: AppStateDep,
    user_id: IdPath,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude_seen: bool = True,
    genres: Annotated[
        list[str] | None,
        Query(max_length=MAX_GENRES, description="Any of these genres (repeat or comma-separate)."),
    ] = None,
    year_min: YearQuery = None,
    year_max: YearQuery = None,
    min_index_version: Annotated[int | None, Query(ge=0)] = None,
    diversity: DiversityQuery = 0.0,
    max_per_genre: MaxPerGenreQuery = None,
) -> Response:
    """Top-k movies for a user from their recent activity (most popular if they have none);
    disliked movies push their neighbours down."""
    filters = make_filters(app_state, genres, year_min, year_max)
    await require_index_version(app_state, min_index_version)
    history = await app_state.store.recent_history(user_id)
    result, shown = await recommend(
        app_state, history, k, filters, exclude_seen, user_id, "user", diversity, max_per_genre
    )
    return JSONBody(response_body(result, user_id, shown))


@router.post("/recommendations", responses=VERSIONED_ERRORS, response_model=Recommendations)
async def anonymous_recommendations(app_state: AppStateDep, body: AnonymousRequest) -> Response:
    """Top-k movies for a session whose recent history (newest first) is in the body."""
    filters = make_filters(app_state, body.genres, body.year_min, body.year_max, "body")
    await require_index_version(app_state, body.min_index_version)
    history = History.of([Event(h.movie_id, h.kind, 0.0, h.rating) for h in body.history])
    result, shown = await recommend(
        app_state,
        history,
        body.k,
        filters,
        body.exclude_seen,
        body.session_id,
        "anonymous",
        body.diversity,
        body.max_per_genre,
    )
    return JSONBody(response_body(result, None, shown))

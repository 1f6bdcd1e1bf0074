"""Catalog lookups: one movie, and the movies nearest to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from service.api.deps import AppStateDep, RecommenderDep, StoreDep
from service.api.errors import ERRORS, responses
from service.api.exposure import show
from service.api.params import IdPath, IdQuery
from service.api.schemas import MAX_K, MovieOut, SimilarMovies, to_items

router = APIRouter(tags=["movies"])
NOT_FOUND = {**ERRORS, **responses(404)}


@router.get("/movies/{movie_id}", responses=NOT_FOUND)
async def get_movie(store: StoreDep, recommender: RecommenderDep, movie_id: IdPath) -> MovieOut:
    """The catalog's record (from the store) and whether this replica indexed it yet."""
    movie = (await store.get_movies([movie_id])).get(movie_id)
    if movie is None or movie.deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"movie {movie_id} is not in the catalog")
    return MovieOut(
        movie_id=movie.id,
        title=movie.title,
        genres=list(movie.genres),
        year=movie.year,
        tags=list(movie.tags),
        version=movie.version,
        indexed=movie_id in recommender.live(),
        imdb_id=movie.imdb_id,
        tmdb_id=movie.tmdb_id,
    )


@router.get("/movies/{movie_id}/similar", responses=NOT_FOUND)
async def similar_movies(
    app_state: AppStateDep,
    movie_id: IdPath,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    user_id: IdQuery = None,
) -> SimilarMovies:
    """Nearest movies by embedding; `because` is the movie itself. `user_id`: who is shown
    them (a user or session), so the events they lead to are attributed (no experiment's
    variant changes this list, so it counts in none)."""
    found = app_state.recommender.similar(movie_id, k)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"movie {movie_id} is not in the index")
    serving, items = found
    version = serving.towers.version
    shown = show(app_state, user_id, "similar", "personalized", version, items, None)
    return SimilarMovies(
        movie_id=movie_id,
        model_version=version,
        index_version=serving.live.index_version,
        items=to_items(items),
        recommendation_id=shown.recommendation_id,
        experiment=shown.experiment,
        variant=shown.variant,
    )

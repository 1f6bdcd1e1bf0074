"""Title search, served from this replica's memory (the index snapshot and its title index)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import RecommenderDep
from service.routes.recommendations import ERRORS
from service.schemas import MovieSearch, MovieSummary
from service.titles import search_titles

router = APIRouter(tags=["movies"])
MAX_SEARCH = 50


@router.get(
    "/movies",
    responses=ERRORS,
    openapi_extra={
        "responses": {
            "200": {
                "content": {
                    "application/json": {
                        "example": {
                            "query": "toy story",
                            "index_version": 9742,
                            "items": [
                                {
                                    "movie_id": "1",
                                    "title": "Toy Story",
                                    "genres": ["Adventure", "Animation", "Children"],
                                    "year": 1995,
                                }
                            ],
                        }
                    }
                }
            }
        }
    },
)
async def search_movies(
    recommender: RecommenderDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="Words the title (or year) starts with; case and accents are ignored.",
            examples=["toy story", "amelie", "alien 1979"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH)] = 10,
) -> MovieSearch:
    """Movies this replica can recommend whose title matches: exact titles first."""
    snapshot = recommender.snapshot()
    hits = await search_titles(snapshot, q, limit)
    return MovieSearch(
        query=q,
        index_version=snapshot.version,
        items=[
            MovieSummary(
                movie_id=h.movie_id,
                title=h.meta.title,
                genres=list(h.meta.genres),
                year=h.meta.year,
            )
            for h in hits
        ],
    )

"""Title search, served from this replica's memory (the live index and its title index)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import RecommenderDep
from service.api.errors import ERRORS, responses, unavailable
from service.api.schemas import MovieSearch, MovieSummary
from service.index.titles import TitleIndexBuilding, search_titles

router = APIRouter(tags=["movies"])
MAX_SEARCH = 50
BUILD_WAIT_SECONDS = 2.0  # after a compaction the new base's title index is built once


@router.get(
    "/movies",
    responses={**ERRORS, **responses(described={503: "The title index is still being built."})},
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
    live = recommender.live()
    try:
        hits = await search_titles(live, q, limit, wait=BUILD_WAIT_SECONDS)
    except TitleIndexBuilding as exc:
        raise unavailable(f"{exc}; retry shortly") from None
    return MovieSearch(
        query=q,
        index_version=live.index_version,
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

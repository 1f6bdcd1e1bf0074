"""Title search, served from this replica's memory (the live index and its title index).

A search's work is bounded and estimated before it runs (`service/index/titles.py`): a cheap
one (most are) runs on the event loop, a costlier one in a worker thread under the work
deadline, so a flood of worst-case queries leaves the loop (and /healthz) answering. The
response has no field saying a search stopped at its cap: the answer is then the best-ranked
of the titles examined, documented in the route's description.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import AppStateDep
from service.api.errors import ERRORS, responses, unavailable
from service.api.schemas import MovieSearch, MovieSummary
from service.index.titles import TitleIndexBuilding, title_search

router = APIRouter(tags=["movies"])
MAX_SEARCH = 50
BUILD_WAIT_SECONDS = 2.0  # after a compaction the new base's title index is built once


@router.get(
    "/movies",
    responses={
        **ERRORS,
        **responses(
            described={
                503: "The title index is still being built, or the search ran past the work "
                "deadline: retry after Retry-After."
            }
        ),
    },
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
    app_state: AppStateDep,
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
    """Movies this replica can recommend whose title matches: the exact title first, then
    titles starting with `q`, then titles with a word (or year) starting with each word of
    `q`, shorter titles first.

    Repeated words count once. A word of one or two letters that starts many title words
    filters the other words' matches; alone ("t") it matches titles starting with it, then
    titles having it as a whole word. A search examines a bounded number of titles having its
    rarest word, the shortest first: past that cap, the answer is the best of those examined."""
    live = app_state.recommender.live()
    try:
        search = await title_search(live, q, limit, wait=BUILD_WAIT_SECONDS)
    except TitleIndexBuilding as exc:
        raise unavailable(f"{exc}; retry shortly") from None
    hits = search.run() if search.cheap else await app_state.offload.run(search.run)
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

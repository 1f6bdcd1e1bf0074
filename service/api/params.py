"""Path and query parameters shared by the routes, by the store's rules (`store/records.py`).

Kept apart from `schemas.py`, which is pydantic alone: lambdafit's handler renders responses
with it and must not import FastAPI.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from service.api.schemas import DIVERSITY_HELP, MAX_K, MAX_PER_GENRE_HELP
from service.store.records import ID_PATTERN, MAX_ID_LENGTH, MAX_YEAR, MIN_YEAR

# Ids in paths, for users and movies alike.
IdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, examples=["1"])
]
# Year filters: a bound outside the years a movie can have is a mistake, not a filter.
YearQuery = Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)]
# An optional id in a query: who is shown a list (a user or an anonymous session).
IdQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
# The diversity knob and the genre cap (`service/rerank.py`): out of range is a 422.
DiversityQuery = Annotated[float, Query(ge=0, le=1, description=DIVERSITY_HELP)]
MaxPerGenreQuery = Annotated[int | None, Query(ge=1, le=MAX_K, description=MAX_PER_GENRE_HELP)]

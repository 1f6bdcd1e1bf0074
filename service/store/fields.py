"""The rules of `records.py` as pydantic field types, for the API's bodies and the webhook's.

A request is refused with a 422 naming the field by the same rule the store applies before a
write, so nothing the API accepts fails later in the store (and nothing the store would take is
refused at the door).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from service.store.records import (
    GENRE_SEPARATOR,
    ID_PATTERN,
    ID_SEPARATOR,
    LINK_ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_ITEM_LENGTH,
    MAX_RATING,
    MAX_TEXT_LENGTH,
    MAX_YEAR,
    MIN_RATING,
    MIN_YEAR,
    text_problem,
)


def catalog_text(max_length: int, forbidden: str = "") -> AfterValidator:
    """Trim, then apply the store's one rule for catalog text (`text_problem`)."""

    def check(value: str) -> str:
        value = value.strip()
        if problem := text_problem(value, max_length, forbidden):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


MovieId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, examples=["1"])
]
Title = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_LENGTH), catalog_text(MAX_TEXT_LENGTH)
]
Genre = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ITEM_LENGTH),
    catalog_text(MAX_ITEM_LENGTH, ID_SEPARATOR + GENRE_SEPARATOR),
]
Tag = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ITEM_LENGTH),
    catalog_text(MAX_ITEM_LENGTH, ID_SEPARATOR),
]
LinkId = Annotated[str, Field(pattern=LINK_ID_PATTERN)]
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]
Rating = Annotated[float, Field(ge=MIN_RATING, le=MAX_RATING, examples=[4.5])]

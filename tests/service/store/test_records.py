"""One rule, one place: what the API's and the webhook's field types accept is exactly what the
store accepts before a write, at every boundary of every rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from service.store.errors import InvalidRecord
from service.store.fields import LinkId, MovieId, Rating, Tag, Year
from service.store.records import (
    MAX_ID_LENGTH,
    MAX_ITEM_LENGTH,
    Event,
    Movie,
    validate_events,
    validate_movie,
)


def field_accepts(kind: Any, value: object) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False
    return True


def store_accepts(check: Any) -> bool:
    try:
        check()
    except InvalidRecord:
        return False
    return True


IDS = ["1", "é", "a" * MAX_ID_LENGTH, "a" * (MAX_ID_LENGTH + 1), "", "a|b", "a\nb", "a\u202eb"]
YEARS = [1799, 1800, 1995, 2200, 2201]
RATINGS = [0.0, 0.49, 0.5, 3.0, 5.0, 5.01]
LINKS = ["0", "0114709", "1" * 12, "1" * 13, "tt0114709", "١٢"]  # the last: Arabic-Indic digits
TAGS = ["funny", "a" * MAX_ITEM_LENGTH, "a" * (MAX_ITEM_LENGTH + 1), "a|b", "a\x00b"]


@pytest.mark.parametrize("value", IDS)
def test_ids(value: str) -> None:
    event = Event("1", "watch", 1.0)
    assert field_accepts(MovieId, value) == store_accepts(
        lambda: validate_movie(Movie(value, "Title"))
    )
    assert field_accepts(MovieId, value) == store_accepts(lambda: validate_events(value, [event]))


@pytest.mark.parametrize("value", YEARS)
def test_years(value: int) -> None:
    assert field_accepts(Year, value) == store_accepts(
        lambda: validate_movie(Movie("1", "Title", year=value))
    )


@pytest.mark.parametrize("value", RATINGS)
def test_ratings(value: float) -> None:
    assert field_accepts(Rating, value) == store_accepts(
        lambda: validate_events("u", [Event("1", "rate", 1.0, value)])
    )


@pytest.mark.parametrize("value", LINKS)
def test_link_ids(value: str) -> None:
    assert field_accepts(LinkId, value) == store_accepts(
        lambda: validate_movie(Movie("1", "Title", imdb_id=value))
    )


@pytest.mark.parametrize("value", TAGS)
def test_tags(value: str) -> None:
    assert field_accepts(Tag, value) == store_accepts(
        lambda: validate_movie(Movie("1", "Title", tags=(value,)))
    )

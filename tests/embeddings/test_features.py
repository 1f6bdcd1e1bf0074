"""The encoder that runs inside the exported movie tower: raw strings in, integer ids out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from embeddings.data import Movie

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    from embeddings.features import MovieEncoder, Vocabularies

    vocabularies = Vocabularies(
        movie_ids=["1", "2"],
        genres=["Action", "Comedy"],
        title_tokens=["toy", "story", "the"],
        tags=["pixar", "funny"],
    )
    return MovieEncoder(vocabularies)


def encode(encoder: Any, **fields: object) -> dict[str, Any]:
    raw = {"movie_id": "", "title": "", "genres": "", "tags": "", "year": 0, **fields}
    tensors = {
        name: tf.constant([value], tf.int32 if name == "year" else tf.string)
        for name, value in raw.items()
    }
    return {name: value.numpy()[0] for name, value in encoder(**tensors).items()}


def test_known_and_unknown_ids(encoder) -> None:  # type: ignore[no-untyped-def]
    assert encode(encoder, movie_id="2")["movie_id"] == 2
    assert encode(encoder, movie_id="new-movie")["movie_id"] == 0  # content path only


def test_title_words_with_or_without_the_year_suffix(encoder) -> None:  # type: ignore[no-untyped-def]
    with_year = encode(encoder, title="Toy Story, The (1995)")["title"]
    without = encode(encoder, title="TOY story: the")["title"]
    np.testing.assert_array_equal(with_year, without)
    assert with_year[:3].tolist() == [1, 2, 3]
    assert not with_year[3:].any()


def test_unknown_words_are_dropped_not_counted(encoder) -> None:  # type: ignore[no-untyped-def]
    assert encode(encoder, title="Zorglub Story")["title"][:2].tolist() == [2, 0]
    assert encode(encoder, tags="Pixar|very funny")["tags"][:3].tolist() == [1, 2, 0]


def test_genres_pipe_joined_empty_or_no_genres(encoder) -> None:  # type: ignore[no-untyped-def]
    assert encode(encoder, genres="Comedy|Action")["genres"][:3].tolist() == [2, 1, 0]
    assert not encode(encoder, genres="")["genres"].any()
    assert not encode(encoder, genres="(no genres listed)")["genres"].any()


def test_year_buckets_with_zero_for_unknown(encoder) -> None:  # type: ignore[no-untyped-def]
    from embeddings.features import YEAR_BUCKETS

    assert encode(encoder, year=0)["year"] == 0
    assert encode(encoder, year=1900)["year"] == 1
    assert encode(encoder, year=1995)["year"] == 1 + (1995 - 1900) // 5
    assert encode(encoder, year=2500)["year"] == YEAR_BUCKETS - 1


def test_vocabularies_come_from_trained_movies_only() -> None:
    from embeddings.features import build_vocabularies

    movies = [
        Movie("1", "Star Wars", 1977, ("Sci-Fi",), ("space",)),
        Movie("2", "Star Trek", 1979, ("Sci-Fi",), ("space",)),
        Movie("3", "Star Dust", 2007, ("Fantasy",), ("space",)),  # cold
    ]
    vocab = build_vocabularies(movies, np.array([True, True, False]), min_count=2)
    assert vocab.movie_ids == ["1", "2"]
    assert vocab.genres == ["Sci-Fi"]
    assert vocab.title_tokens == ["star"]  # "wars", "trek" once; "dust" only in a cold movie
    assert vocab.tags == ["space"]

"""The NumPy movie tower (what a replica embeds movies with) against the exported SavedModel."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings import numpy_movie_tower
from embeddings.data import BUNDLED_DATA, Movie, read_movies
from embeddings.numpy_movie_tower import NumpyMovieTower

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def saved(tiny_artifacts: Path) -> Any:
    from embeddings.artifacts import load_towers

    return load_towers(tiny_artifacts)


@pytest.fixture(scope="session")
def tower(tiny_artifacts: Path) -> NumpyMovieTower:
    return numpy_movie_tower.load(tiny_artifacts)


@pytest.fixture(scope="session")
def encoder(tiny_artifacts: Path) -> Any:
    from embeddings.features import MovieEncoder, Vocabularies

    return MovieEncoder(Vocabularies.load(tiny_artifacts / "vocab"))


def saved_vectors(saved: Any, movies: Sequence[Movie]) -> np.ndarray:
    from embeddings.movie_inputs import embed_movies

    return embed_movies(saved.movie_tower, movies, 64)


def test_every_bundled_movie_gets_the_saved_models_vector(
    saved: Any, tower: NumpyMovieTower
) -> None:
    movies = [m for _, m in read_movies(BUNDLED_DATA, lambda *_: None)]
    assert len(movies) == 9742

    gaps = np.abs(tower.embed(movies) - saved_vectors(saved, movies)).max(axis=1)

    skewed = [m.id for m, gap in zip(movies, gaps, strict=True) if gap > TOLERANCE]
    assert skewed == [], f"{len(skewed)} movies differ, up to {gaps.max():.2e}"


def test_every_character_splits_words_as_tensorflow_does() -> None:
    """Each code point between two letters (the lower-casing, the word characters, NUL)."""
    from embeddings.features import tokenize as tensorflow_tokenize

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"a{c}B{c}" for c in chars]
    expected = tensorflow_tokenize(tf.constant(texts)).to_list()
    differ = [
        hex(ord(c))
        for c, text, words in zip(chars, texts, expected, strict=True)
        if numpy_movie_tower.tokenize(text) != [w.decode() for w in words]
    ]
    assert differ == []


def vocabulary(tower: NumpyMovieTower, name: str) -> list[str]:
    return sorted(tower.encoder.vocabularies[name])


# Year suffixes, separators and what Python's and RE2's rules read differently (\v, NUL,
# Unicode spaces and digits, a letter that lower-cases to two characters).
ODD_PIECES = [
    *("(1995)", " (2001\u20132002)", "(2007-)", "(\u0661\u0669\u0669\u0665)", "|", "  "),
    *("\n", "\v", "\0", "\x85", "\u3000", "\u00a0", "\u0130", "\u212a"),
]


def odd_movies(tower: NumpyMovieTower) -> st.SearchStrategy[list[Movie]]:
    """Known words and ids mixed with any text: unknown words, unicode, separators, year
    suffixes, long titles, NUL; any year an int32 holds, or none."""
    words = st.sampled_from(vocabulary(tower, "title_tokens"))
    text = st.one_of(words, st.text(max_size=12), st.sampled_from(ODD_PIECES))
    pieces = st.lists(text, max_size=60)
    suffix = st.sampled_from(ODD_PIECES[:4]), st.sampled_from(["", *ODD_PIECES[4:]])
    suffixed = st.tuples(pieces.map(" ".join), *suffix).map("".join)
    title = pieces.map(" ".join) | pieces.map("".join) | suffixed | st.text(max_size=3000)
    movie_id = st.sampled_from(vocabulary(tower, "movie_ids")) | st.text(max_size=8)
    genre = st.sampled_from(vocabulary(tower, "genres")) | st.text(max_size=12)
    tag = st.sampled_from(vocabulary(tower, "tags")) | text
    year = st.none() | st.integers(-(2**31), 2**31 - 1) | st.integers(1890, 2040)
    movie = st.builds(
        Movie,
        id=movie_id.map(lambda i: i.center(len(i) + 2)) | movie_id,
        title=title,
        year=year,
        genres=st.lists(genre, max_size=14).map(tuple),
        tags=st.lists(tag, max_size=50).map(tuple),
    )
    return st.lists(movie, min_size=1, max_size=8)


def test_generated_odd_movies_get_the_saved_models_words_features_and_vectors(
    saved: Any, tower: NumpyMovieTower, encoder: Any
) -> None:
    from embeddings.features import movie_words
    from embeddings.movie_inputs import tower_inputs

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(odd_movies(tower))
    def check(movies: list[Movie]) -> None:
        inputs = tower_inputs(movies)
        words = movie_words(**{k: v for k, v in inputs.items() if k != "year"})
        for name, value in words.items():
            split = value.to_list() if name != "movie_id" else [[v] for v in value.numpy()]
            mine = [numpy_movie_tower.movie_words(m)[name] for m in movies]
            assert mine == [[w.decode() for w in row] for row in split], name
        expected = {k: v.numpy() for k, v in encoder(**inputs).items()}
        features = tower.encoder.features(movies)
        for name, value in expected.items():
            assert features[name].tolist() == value.tolist(), name
        gap = np.abs(tower.embed(movies) - saved_vectors(saved, movies)).max()
        assert gap <= TOLERANCE

    check()


def test_export_refuses_numpy_weights_that_differ(
    tiny_artifacts: Path, saved: Any, tmp_path: Path
) -> None:
    from embeddings.artifacts import ExportError
    from embeddings.export import check_numpy_towers

    copy = Path(shutil.copytree(tiny_artifacts, tmp_path / "version"))
    movies = [m for _, m in read_movies(BUNDLED_DATA, lambda *_: None)][:500]
    vectors = saved_vectors(saved, movies)
    assert check_numpy_towers(copy, saved, movies, vectors, 64, 50) <= TOLERANCE

    with np.load(copy / numpy_movie_tower.WEIGHTS_FILE) as archive:
        weights = dict(archive)
    weights["title"] = weights["title"] * 1.001  # what a wrong export of one table would do
    np.savez(copy / numpy_movie_tower.WEIGHTS_FILE, **weights)
    (copy / "probe.json").unlink()

    with pytest.raises(ExportError, match="differ from the SavedModels on the catalog movies"):
        check_numpy_towers(copy, saved, movies, vectors, 64, 50)
    assert not (copy / "probe.json").exists()


def test_an_older_version_gets_its_numpy_tower_from_its_saved_model(
    tiny_artifacts: Path, tower: NumpyMovieTower, tmp_path: Path
) -> None:
    """What `movie-recs add-numpy-towers` does to a version exported before the NumPy tower."""
    from embeddings.export import add_numpy_towers

    copy = Path(shutil.copytree(tiny_artifacts, tmp_path / "version"))
    for name in ("movie_tower.npz", "movie_tower.json", "probe.json"):
        (copy / name).unlink()
    movies = [m for _, m in read_movies(BUNDLED_DATA, lambda *_: None)]

    assert add_numpy_towers(copy, movies) <= TOLERANCE

    rebuilt = numpy_movie_tower.load(copy)
    assert np.array_equal(rebuilt.embed(movies), tower.embed(movies))
    assert (copy / "probe.json").read_text() == (tiny_artifacts / "probe.json").read_text()

"""Fixtures of the embeddings tests: a tiny real model, and MovieLens-format files to break."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.embeddings import WriteData

MOVIES = [
    ("1", "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    ("2", "Jumanji (1995)", "Adventure|Children|Fantasy"),
    ("3", "Heat (1995)", "Action|Crime|Thriller"),
    ("4", "Babylon 5", "Sci-Fi"),
    ("5", "Hyena Road (2015)", "(no genres listed)"),
]
RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def write_data(tmp_path: Path) -> WriteData:
    """Write a MovieLens-format directory; each file's header and rows can be overridden."""

    def write(
        ratings: Sequence[Sequence[object]] = (),
        movies: Sequence[Sequence[object]] = MOVIES,
        ratings_header: Sequence[str] = RATINGS_HEADER,
        movies_header: Sequence[str] = MOVIES_HEADER,
        tags: Sequence[Sequence[object]] | None = None,
    ) -> Path:
        directory = tmp_path / "data"
        directory.mkdir(exist_ok=True)
        write_csv(directory / "ratings.csv", ratings_header, ratings)
        write_csv(directory / "movies.csv", movies_header, movies)
        if tags is not None:
            write_csv(directory / "tags.csv", ("userId", "movieId", "tag", "timestamp"), tags)
        return directory

    return write


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_model_dir: Path) -> Path:
    """A real model version directory, trained in seconds on 40 users of the bundled data
    (the session's one tiny model, from tests/conftest.py). Its parent's `latest` names it."""
    return tiny_model_dir

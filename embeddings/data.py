"""Read a MovieLens-latest directory (`ratings.csv`, `movies.csv`, optional `tags.csv`).

Any directory in that format trains, not just the bundled one. Broken rows are skipped and
counted in `Dataset.report`, so one bad line does not stop a training; only problems a training
cannot survive (a missing file or column, no usable rating) raise `DataError`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIES_COLUMNS = ("movieId", "title", "genres")
TAGS_COLUMNS = ("movieId", "tag")
NO_GENRES = "(no genres listed)"

# "Toy Story (1995)", "Show (2006-2007)" (hyphen or en dash), "Show (2007-)": the first year counts.
_TITLE_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")


class DataError(Exception):
    """The data cannot be trained on; the message says which file and why."""


@dataclass(frozen=True)
class Movie:
    movie_id: str
    title: str  # without the "(1995)" suffix: the form the service stores
    year: int  # 0 when the title carries no year
    genres: tuple[str, ...]
    tags: tuple[str, ...]  # lower-cased, most used first


@dataclass(frozen=True)
class Ratings:
    """One row per (user, movie), in file order; ids are strings as in MovieLens."""

    user_ids: np.ndarray  # object (str)
    movie_ids: np.ndarray  # object (str)
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class Dataset:
    movies: list[Movie]
    ratings: Ratings
    report: Counter[str] = field(default_factory=Counter)

    def content_hash(self) -> str:
        """Hash of the parsed content (in file order: it breaks timestamp ties in the split)."""
        digest = hashlib.sha256()
        for movie in self.movies:
            digest.update(repr(movie).encode())
        for i in range(len(self.ratings)):
            row = (
                f"{self.ratings.user_ids[i]},{self.ratings.movie_ids[i]},"
                f"{self.ratings.ratings[i]:.2f},{self.ratings.timestamps[i]}\n"
            )
            digest.update(row.encode())
        return digest.hexdigest()


def split_title(title: str) -> tuple[str, int]:
    """`"Toy Story (1995)"` -> `("Toy Story", 1995)`; a title without a year gives year 0."""
    match = _TITLE_YEAR.search(title)
    if match is None:
        return title.strip(), 0
    return title[: match.start()].strip(), int(match.group(1))


def load_dataset(directory: Path) -> Dataset:
    """Read and validate one MovieLens-format directory."""
    directory = Path(directory)
    report: Counter[str] = Counter()
    tags = _read_tags(directory / "tags.csv", report)
    movies = _read_movies(directory / "movies.csv", tags, report)
    ratings = _read_ratings(directory / "ratings.csv", {m.movie_id for m in movies}, report)
    return Dataset(movies=movies, ratings=ratings, report=report)


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing columns {', '.join(missing)}")
        yield from reader


def _read_tags(path: Path, report: Counter[str]) -> dict[str, tuple[str, ...]]:
    if not path.is_file():
        report["tags_file_missing"] += 1
        return {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in _rows(path, TAGS_COLUMNS):
        movie_id, tag = (row["movieId"] or "").strip(), (row["tag"] or "").strip().lower()
        if not movie_id or not tag:
            report["tags_bad_rows"] += 1
            continue
        counts[movie_id][tag] += 1
    # Counter.most_common keeps first-seen order among ties, so the result is deterministic.
    return {m: tuple(t for t, _ in c.most_common()) for m, c in counts.items()}


def _read_movies(path: Path, tags: dict[str, tuple[str, ...]], report: Counter[str]) -> list[Movie]:
    movies: dict[str, Movie] = {}
    for row in _rows(path, MOVIES_COLUMNS):
        movie_id = (row["movieId"] or "").strip()
        if not movie_id:
            report["movies_bad_rows"] += 1
            continue
        if movie_id in movies:
            report["movies_duplicate_ids"] += 1
            continue
        title, year = split_title(row["title"] or "")
        genres = tuple(
            g.strip() for g in (row["genres"] or "").split("|") if g.strip() and g != NO_GENRES
        )
        for problem, present in (("year", year), ("genres", genres), ("title", title)):
            if not present:
                report[f"movies_without_{problem}"] += 1
        movies[movie_id] = Movie(movie_id, title, year, genres, tags.get(movie_id, ()))
    if not movies:
        raise DataError(f"{path}: no movies")
    return list(movies.values())


def _read_ratings(path: Path, known_movies: set[str], report: Counter[str]) -> Ratings:
    latest: dict[tuple[str, str], tuple[float, int]] = {}
    for row in _rows(path, RATINGS_COLUMNS):
        try:
            user_id, movie_id = row["userId"].strip(), row["movieId"].strip()
            rating, timestamp = float(row["rating"]), int(float(row["timestamp"]))
        except (AttributeError, TypeError, ValueError):
            report["ratings_bad_rows"] += 1
            continue
        if not user_id or not movie_id or not np.isfinite(rating):
            report["ratings_bad_rows"] += 1
            continue
        if movie_id not in known_movies:
            report["ratings_unknown_movie"] += 1
            continue
        key = (user_id, movie_id)
        if key in latest:
            report["ratings_duplicate"] += 1
            if timestamp < latest[key][1]:
                continue
            del latest[key]  # re-insert so file order follows the kept (latest) rating
        latest[key] = (rating, timestamp)
    if not latest:
        raise DataError(f"{path}: no usable ratings")
    keys = list(latest)
    values = list(latest.values())
    return Ratings(
        user_ids=np.array([u for u, _ in keys], dtype=object),
        movie_ids=np.array([m for _, m in keys], dtype=object),
        ratings=np.array([r for r, _ in values], dtype=np.float32),
        timestamps=np.array([t for _, t in values], dtype=np.int64),
    )

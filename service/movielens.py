"""Reading the MovieLens-latest CSV format, for the import command.

Everything is parsed and checked before anything is written, so a missing file or column
stops the import with nothing half-written; single bad rows are reported and skipped.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service.store.base import Event, InvalidRecord, Movie, validate_event, validate_movie

YEAR_SUFFIX = re.compile(r"\s*\((\d{4})(?:\s*[-\u2013]\s*\d{0,4}\s*)?\)\s*$")
NO_GENRES = "(no genres listed)"
MAX_TAGS_PER_MOVIE = 20

REQUIRED = {
    "movies.csv": ("movieId", "title", "genres"),
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "tags.csv": ("movieId", "tag"),
    "links.csv": ("movieId", "imdbId", "tmdbId"),
}


class DatasetError(Exception):
    """The dataset cannot be imported at all (missing file or column)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    line: int
    reason: str


@dataclass
class MovieLensData:
    movies: list[Movie]
    events: dict[str, list[Event]]
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        return sum(len(v) for v in self.events.values())


def split_title(raw: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); a title without a year keeps year None."""
    match = YEAR_SUFFIX.search(raw)
    if not match:
        return raw.strip(), None
    title = raw[: match.start()].strip()
    return (title or raw.strip()), int(match.group(1))


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, row


def _links(path: Path, bad: list[BadRow]) -> dict[str, tuple[str | None, str | None]]:
    """movieId -> (IMDb, TMDB) ids from the optional links.csv; an empty cell is None."""
    if not path.exists():
        return {}
    links: dict[str, tuple[str | None, str | None]] = {}
    for line, row in _rows(path, REQUIRED["links.csv"]):
        imdb, tmdb = (row["imdbId"] or "").strip() or None, (row["tmdbId"] or "").strip() or None
        if any(v is not None and not (v.isascii() and v.isdigit()) for v in (imdb, tmdb)):
            bad.append(BadRow("links.csv", line, "imdbId and tmdbId must be digits"))
            continue
        links[(row["movieId"] or "").strip()] = (imdb, tmdb)
    return links


def read_movielens(directory: Path) -> MovieLensData:
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    bad: list[BadRow] = []

    tags: dict[str, Counter[str]] = defaultdict(Counter)
    tags_path = directory / "tags.csv"
    if tags_path.exists():
        for line, row in _rows(tags_path, REQUIRED["tags.csv"]):
            tag = (row["tag"] or "").strip().lower().replace("|", "/")
            if tag and len(tag) <= 100:
                tags[row["movieId"].strip()][tag] += 1
            else:
                bad.append(BadRow("tags.csv", line, "empty or over-long tag"))

    links = _links(directory / "links.csv", bad)
    movies: list[Movie] = []
    seen: set[str] = set()
    for line, row in _rows(directory / "movies.csv", REQUIRED["movies.csv"]):
        movie_id = (row["movieId"] or "").strip()
        title, year = split_title(row["title"] or "")
        genres = tuple(g for g in (row["genres"] or "").split("|") if g and g != NO_GENRES)
        top_tags = tuple(t for t, _ in tags[movie_id].most_common(MAX_TAGS_PER_MOVIE))
        imdb_id, tmdb_id = links.get(movie_id, (None, None))
        movie = Movie(
            id=movie_id,
            title=title,
            genres=genres,
            year=year,
            tags=top_tags,
            imdb_id=imdb_id,
            tmdb_id=tmdb_id,
        )
        try:
            validate_movie(movie)
        except InvalidRecord as exc:
            bad.append(BadRow("movies.csv", line, str(exc)))
            continue
        if movie_id in seen:
            bad.append(BadRow("movies.csv", line, f"duplicate movie id {movie_id}"))
            continue
        seen.add(movie_id)
        movies.append(movie)

    events: dict[str, list[Event]] = defaultdict(list)
    for line, row in _rows(directory / "ratings.csv", REQUIRED["ratings.csv"]):
        try:
            user_id = row["userId"].strip()
            event = Event(
                movie_id=row["movieId"].strip(),
                kind="rate",
                rating=float(row["rating"]),
                timestamp=float(row["timestamp"]),
            )
            validate_event(user_id, event)
        except (ValueError, AttributeError) as exc:
            bad.append(BadRow("ratings.csv", line, str(exc) or "unparsable value"))
            continue
        if event.movie_id not in seen:
            bad.append(BadRow("ratings.csv", line, f"unknown movie id {event.movie_id}"))
            continue
        events[user_id].append(event)
    return MovieLensData(movies=movies, events=dict(events), bad_rows=bad)

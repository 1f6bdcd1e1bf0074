"""The MovieLens dataset as store records, for the import command.

Parsing is `embeddings.data`'s (the reader training uses, so a movie's year, genres and tags are
what the model was trained on); this module turns its rows into store records, applies the
store's limits, and keeps every skipped row with its file and line for the import report.
Everything is read and checked before anything is written, so a missing file or column stops the
import with nothing half-written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from embeddings.data import DataError, read_links, read_movies, read_ratings
from service.store.base import Event, InvalidRecord, Movie, validate_event, validate_movie

DatasetError = DataError
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


def read_movielens(directory: Path) -> MovieLensData:
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    bad: list[BadRow] = []

    def skip(file: str, line: int, _reason: str, message: str) -> None:
        bad.append(BadRow(file, line, message))

    links = read_links(directory, skip)
    movies: list[Movie] = []
    for line, row in read_movies(directory, skip):
        imdb_id, tmdb_id = links.get(row.id, (None, None))
        movie = Movie(
            id=row.id,
            title=row.title,
            genres=row.genres,
            year=row.year,
            tags=row.tags,
            imdb_id=imdb_id,
            tmdb_id=tmdb_id,
        )
        try:
            validate_movie(movie)
        except InvalidRecord as exc:
            bad.append(BadRow("movies.csv", line, str(exc)))
            continue
        movies.append(movie)

    events: dict[str, list[Event]] = defaultdict(list)
    for rating in read_ratings(directory, {m.id for m in movies}, skip):
        event = Event(
            movie_id=rating.movie_id, kind="rate", rating=rating.rating, timestamp=rating.timestamp
        )
        try:
            validate_event(rating.user_id, event)
        except InvalidRecord as exc:
            bad.append(BadRow("ratings.csv", rating.line, str(exc)))
            continue
        events[rating.user_id].append(event)
    return MovieLensData(movies=movies, events=dict(events), bad_rows=bad)

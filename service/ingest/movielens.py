"""The MovieLens dataset as store records, for the import command.

Parsing is `embeddings.data`'s (the reader training uses, so a movie's year, genres and tags are
what the model was trained on); this module turns its rows into store records, applies the
store's limits, and keeps every skipped row with its file and line for the import report.
The files' presence and columns are checked before anything is written, so a missing file or
column stops the import with nothing half-written; the ratings are then streamed in chunks (25M
of them do not fit in memory as records).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from embeddings.data import DataError, count_ratings, read_links, read_movies, read_rating_blocks
from service.store.errors import InvalidRecord
from service.store.records import Event, Movie, plausible_ratings, validate_event, validate_movie

DatasetError = DataError
"""The dataset cannot be imported at all (missing file or column)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    line: int
    reason: str


EVENT_CHUNK = 20_000  # ratings per store write: one pipeline (Redis) or transaction (SQLite)


@dataclass(frozen=True, slots=True)
class EventChunk:
    events: dict[str, list[Event]]  # by user, in file order
    rows: int  # ratings.csv rows this chunk consumed (bad ones included)


@dataclass
class MovieLensData:
    """The movies (read whole: a catalog is small) and the ratings, streamed in chunks.

    `bad_rows` holds the movie problems at once and the rating problems as `event_chunks`
    meets them; `events_read` counts the good ratings streamed so far.
    """

    directory: Path
    movies: list[Movie]
    rating_rows: int  # data rows in ratings.csv: the size of the stream, for progress
    bad_rows: list[BadRow] = field(default_factory=list)
    events_read: int = 0

    def event_chunks(self, size: int = EVENT_CHUNK) -> Iterator[EventChunk]:
        """Every good rating as a `rate` event, `size` rows at a time, without holding the file."""
        self.events_read = 0
        known = {m.id for m in self.movies}
        good_users: set[str] = set()
        events: dict[str, list[Event]] = defaultdict(list)
        consumed = 0
        last_line = 1

        def skip(file: str, line: int, _reason: str, message: str) -> None:
            self.bad_rows.append(BadRow(file, line, message))

        for block in read_rating_blocks(self.directory, known, skip):
            plausible = plausible_ratings(block.ratings, block.timestamps).tolist()
            for user_id, movie_id, rating, timestamp, line, fine in zip(
                block.user_ids,
                block.movie_ids,
                block.ratings.tolist(),
                block.timestamps.tolist(),
                block.lines.tolist(),
                plausible,
                strict=True,
            ):
                event = Event(movie_id=movie_id, kind="rate", rating=rating, timestamp=timestamp)
                # Movie ids are the catalog's (checked): a user id once, values only when odd.
                if not fine or user_id not in good_users:
                    try:
                        validate_event(user_id, event)
                    except InvalidRecord as exc:
                        self.bad_rows.append(BadRow("ratings.csv", line, str(exc)))
                        continue
                    good_users.add(user_id)
                events[user_id].append(event)
                consumed += 1
                if consumed == size:
                    self.events_read += consumed
                    yield EventChunk(dict(events), line - last_line)
                    events, consumed, last_line = defaultdict(list), 0, line
        self.events_read += consumed
        yield EventChunk(dict(events), max(0, self.rating_rows + 1 - last_line))

    def all_events(self) -> dict[str, list[Event]]:
        """Every rating at once, by user: for small datasets (tests, the bundled one)."""
        merged: dict[str, list[Event]] = defaultdict(list)
        for chunk in self.event_chunks():
            for user, events in chunk.events.items():
                merged[user].extend(events)
        return dict(merged)


def read_movielens(directory: Path) -> MovieLensData:
    """Read and check the movies and the ratings' header: a missing file or column raises here,
    before anything is written."""
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
    rows = count_ratings(directory)
    return MovieLensData(directory=directory, movies=movies, rating_rows=rows, bad_rows=bad)

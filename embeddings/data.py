"""The one reader of the MovieLens-latest format (`movies.csv`, `ratings.csv`, optional `tags.csv`).

Training (`load_dataset`) and the service's importer (`service.movielens`) both read through
`read_movies` and `read_ratings`, so a title's year, the genres and the tags a movie keeps are
decided here once: the movie tower sees the same record at training time as at serving time.
Rows that cannot be used are skipped and passed to a `Skip` callback (file, line, short reason
key, message): training counts the keys, the importer lists the messages. Only problems nothing
can survive (a missing file or column, no movie, no usable rating) raise `DataError`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIES_COLUMNS = ("movieId", "title", "genres")
TAGS_COLUMNS = ("movieId", "tag")
LINKS_COLUMNS = ("movieId", "imdbId", "tmdbId")
NO_GENRES = "(no genres listed)"
# The dataset shipped with the project: the default of training, the demo and the importer. It is
# located here, not in the service's settings, so training runs from embeddings/ and data/ alone
# (the image's training stage copies nothing else).
BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "ml-latest-small"
# The tag rule: the 20 most used tags of a movie (ties in first-seen order), lower-cased, each at
# most 100 characters, "|" (the tower's list separator) written as "/". A bound is needed because
# a catalog record is bounded (at most 100 tags; movie 296 has 173 distinct tags) and the tower
# reads only the first 32 known tag words anyway; training uses the same bound, so what it learns
# from is exactly the record the service stores and embeds.
MAX_TAGS_PER_MOVIE = 20
MAX_TAG_LENGTH = 100

# "Toy Story (1995)", "Show (2006-2007)" (hyphen or en dash), "Show (2007-)", "Show (2016- )":
# the first year counts. The en dash is put in as the character itself (not a regex escape), so
# the movie tower's RE2 strips the same suffix with this very pattern (features.py).
YEAR_SUFFIX = r"\s*\((\d{4})(?:\s*[-" + "\u2013" + r"]\s*(?:\d{4})?\s*)?\)\s*$"
_TITLE_YEAR = re.compile(YEAR_SUFFIX)

Skip = Callable[[str, int, str, str], None]
"""Called for each skipped row: (file name, line number, reason key, message)."""


class DataError(Exception):
    """The data cannot be used at all; the message says which file and why."""


@dataclass(frozen=True)
class Movie:
    """A catalog record as training reads it; the same fields as the service's stored movie."""

    id: str
    title: str  # without the "(1995)" suffix: the form the service stores
    year: int | None  # None when the title carries no year
    genres: tuple[str, ...]
    tags: tuple[str, ...]  # the tag rule above


@dataclass(frozen=True)
class Rating:
    line: int
    user_id: str
    movie_id: str
    rating: float
    timestamp: float


@dataclass(frozen=True)
class Ratings:
    """One row per (user, movie), in file order.

    Ids are coded (a user's position in `users`, a movie's in the dataset's `movies`): 20 bytes
    a rating, where a Python string per id would take ~120 (3 GB at 25M ratings).
    """

    users: list[str]  # distinct user ids, first seen first
    movies: list[str]  # the catalog's movie ids, in the dataset's order
    user_index: np.ndarray  # int32 [R]
    movie_index: np.ndarray  # int32 [R]
    ratings: np.ndarray  # float32 [R]
    timestamps: np.ndarray  # int64 [R]

    def __len__(self) -> int:
        return len(self.user_index)

    @property
    def user_ids(self) -> np.ndarray:
        """The user id of each row (object array; for small data and tests)."""
        return np.asarray(np.array(self.users, dtype=object)[self.user_index])

    @property
    def movie_ids(self) -> np.ndarray:
        return np.asarray(np.array(self.movies, dtype=object)[self.movie_index])

    def subset(self, rows: np.ndarray) -> Ratings:
        """The rows of a boolean mask, with the same coding."""
        return Ratings(
            self.users,
            self.movies,
            self.user_index[rows],
            self.movie_index[rows],
            self.ratings[rows],
            self.timestamps[rows],
        )


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
        ratings, chunk = self.ratings, 1 << 20
        for begin in range(0, len(ratings), chunk):
            rows = slice(begin, begin + chunk)
            users = [ratings.users[u] for u in ratings.user_index[rows].tolist()]
            movies = [ratings.movies[m] for m in ratings.movie_index[rows].tolist()]
            text = "".join(
                f"{u},{m},{r:.2f},{t}\n"
                for u, m, r, t in zip(
                    users,
                    movies,
                    ratings.ratings[rows].tolist(),
                    ratings.timestamps[rows].tolist(),
                    strict=True,
                )
            )
            digest.update(text.encode())
        return digest.hexdigest()


def split_title(title: str) -> tuple[str, int | None]:
    """`"Toy Story (1995)"` -> `("Toy Story", 1995)`; a title without a year gives None."""
    match = _TITLE_YEAR.search(title)
    if match is None:
        return title.strip(), None
    return (title[: match.start()].strip() or title.strip()), int(match.group(1))


def load_dataset(directory: Path) -> Dataset:
    """Read one MovieLens-format directory for training; skipped rows are counted by reason."""
    directory = Path(directory)
    report: Counter[str] = Counter()

    def count(_file: str, _line: int, reason: str, _message: str) -> None:
        report[reason] += 1

    movies = [movie for _, movie in read_movies(directory, count)]
    for movie in movies:
        for problem, present in (("year", movie.year), ("genres", movie.genres)):
            if not present:
                report[f"movies_without_{problem}"] += 1
    if not (directory / "tags.csv").is_file():
        report["tags_file_missing"] += 1
    rows = read_ratings(directory, {m.id for m in movies}, count)
    ratings = _latest_ratings(rows, [m.id for m in movies], report, directory / "ratings.csv")
    return Dataset(movies=movies, ratings=ratings, report=report)


def read_movies(directory: Path, skip: Skip) -> list[tuple[int, Movie]]:
    """Every usable movie with its line in movies.csv, tags attached, first occurrence wins."""
    tags = _read_tags(directory / "tags.csv", skip)
    movies: list[tuple[int, Movie]] = []
    seen: set[str] = set()
    for line, row in _rows(directory / "movies.csv", MOVIES_COLUMNS):
        movie_id = (row["movieId"] or "").strip()
        title, year = split_title(row["title"] or "")
        if not movie_id or not title:
            skip("movies.csv", line, "movies_bad_rows", "movie without an id or a title")
            continue
        if movie_id in seen:
            skip("movies.csv", line, "movies_duplicate_ids", f"duplicate movie id {movie_id}")
            continue
        seen.add(movie_id)
        genres = tuple(
            g.strip() for g in (row["genres"] or "").split("|") if g.strip() and g != NO_GENRES
        )
        movies.append((line, Movie(movie_id, title, year, genres, tags.get(movie_id, ()))))
    if not movies:
        raise DataError(f"{directory / 'movies.csv'}: no movies")
    return movies


def read_ratings(directory: Path, known_movies: set[str], skip: Skip) -> Iterator[Rating]:
    """The rating rows of known movies, in file order, one at a time (any size of file).

    Plain `csv.reader` rows by column position: a dict per row costs a third of the time of
    reading 25M ratings."""
    path = directory / "ratings.csv"
    next(_rows(path, RATINGS_COLUMNS), None)  # raises on a missing file or column
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        u, m, r, t = (header.index(c) for c in RATINGS_COLUMNS)
        for row in reader:
            if not row:  # a blank line, as DictReader skipped it
                continue
            line = reader.line_num
            try:
                user_id, movie_id = row[u].strip(), row[m].strip()
                rating, timestamp = float(row[r]), float(row[t])
            except (IndexError, ValueError):
                skip("ratings.csv", line, "ratings_bad_rows", "unparsable value")
                continue
            if not user_id or not movie_id or not math.isfinite(rating):
                skip("ratings.csv", line, "ratings_bad_rows", "missing id or rating")
                continue
            if movie_id not in known_movies:
                skip("ratings.csv", line, "ratings_unknown_movie", f"unknown movie id {movie_id}")
                continue
            yield Rating(line, user_id, movie_id, rating, timestamp)


def count_ratings(directory: Path) -> int:
    """Data rows of ratings.csv, after checking its columns (a progress bar's total)."""
    path = directory / "ratings.csv"
    next(_rows(path, RATINGS_COLUMNS), None)  # raises on a missing file or column
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines - 1 + (last != b"\n"))


def read_links(directory: Path, skip: Skip) -> dict[str, tuple[str | None, str | None]]:
    """movieId -> (IMDb, TMDB) ids from the optional links.csv (an empty cell is None).

    Not a model input: the service keeps them in the catalog record to link out to both sites.
    """
    path = directory / "links.csv"
    if not path.is_file():
        return {}
    links: dict[str, tuple[str | None, str | None]] = {}
    for line, row in _rows(path, LINKS_COLUMNS):
        imdb = (row["imdbId"] or "").strip() or None
        tmdb = (row["tmdbId"] or "").strip() or None
        if any(v is not None and not (v.isascii() and v.isdigit()) for v in (imdb, tmdb)):
            skip("links.csv", line, "links_bad_rows", "imdbId and tmdbId must be digits")
            continue
        links[(row["movieId"] or "").strip()] = (imdb, tmdb)
    return links


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing columns {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, row


def _read_tags(path: Path, skip: Skip) -> dict[str, tuple[str, ...]]:
    if not path.is_file():
        return {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line, row in _rows(path, TAGS_COLUMNS):
        movie_id = (row["movieId"] or "").strip()
        tag = (row["tag"] or "").strip().lower().replace("|", "/")
        if not movie_id or not tag or len(tag) > MAX_TAG_LENGTH:
            skip("tags.csv", line, "tags_bad_rows", "empty or over-long tag")
            continue
        counts[movie_id][tag] += 1
    # Counter.most_common keeps first-seen order among ties, so the result is deterministic.
    return {m: tuple(t for t, _ in c.most_common(MAX_TAGS_PER_MOVIE)) for m, c in counts.items()}


def _latest_ratings(
    rows: Iterator[Rating], movies: list[str], report: Counter[str], path: Path
) -> Ratings:
    """One rating per (user, movie): the latest (a tie: the later row); training learns from each
    pair once. Rows are kept in compact arrays, and duplicates dropped by one sort at the end."""
    users: dict[str, int] = {}
    movie_index = {movie_id: i for i, movie_id in enumerate(movies)}
    user_codes, movie_codes = array("i"), array("i")
    stars, times = array("f"), array("q")
    for row in rows:
        user_codes.append(users.setdefault(row.user_id, len(users)))
        movie_codes.append(movie_index[row.movie_id])
        stars.append(row.rating)
        times.append(int(row.timestamp))
    if not user_codes:
        raise DataError(f"{path}: no usable ratings")
    user_index = np.frombuffer(user_codes, dtype=np.int32)
    movie_codes_np = np.frombuffer(movie_codes, dtype=np.int32)
    timestamps = np.frombuffer(times, dtype=np.int64)
    # Sorted by (user, movie, time, row): the last row of each pair is the one to keep.
    order = np.lexsort((np.arange(len(user_index)), timestamps, movie_codes_np, user_index))
    pair = user_index[order].astype(np.int64) * len(movies) + movie_codes_np[order]
    last = np.r_[pair[1:] != pair[:-1], True]
    kept = np.sort(order[last])  # file order of the kept rows
    report["ratings_duplicate"] += len(user_index) - len(kept)
    if not report["ratings_duplicate"]:
        del report["ratings_duplicate"]
    return Ratings(
        users=list(users),
        movies=movies,
        user_index=user_index[kept].copy(),
        movie_index=movie_codes_np[kept].copy(),
        ratings=np.frombuffer(stars, dtype=np.float32)[kept].copy(),
        timestamps=timestamps[kept].copy(),
    )

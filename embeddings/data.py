"""The one reader of the MovieLens-latest format (`movies.csv`, `ratings.csv`, optional `tags.csv`).

Training (`load_dataset`) and the service's importer (`service.ingest.movielens`) both read through
`read_movies` and `read_rating_blocks`, so a title's year, the genres and the tags a movie keeps are
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
class RatingBlock:
    """Consecutive usable rating rows of ratings.csv, in file order, as columns."""

    lines: np.ndarray  # int64 [n] line numbers in the file
    user_ids: list[str]
    movie_ids: list[str]
    ratings: np.ndarray  # float64 [n]
    timestamps: np.ndarray  # float64 [n]

    def __len__(self) -> int:
        return len(self.lines)


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
    blocks = read_rating_blocks(directory, {m.id for m in movies}, count)
    ratings = _latest_ratings(blocks, [m.id for m in movies], report, directory / "ratings.csv")
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


BLOCK_BYTES = 1 << 22  # ~4 MB of ratings.csv (~160k rows) per block


def read_rating_blocks(
    directory: Path, known_movies: set[str], skip: Skip
) -> Iterator[RatingBlock]:
    """The rating rows of known movies, in file order, a block at a time (any size of file).

    A block of plain numeric rows (MovieLens: digits, '.' and ',' only) is split and converted
    by NumPy in a few C calls, ~10x faster than a Python step per row (25M rows: seconds, not
    minutes); any other block (quotes, spaces, blank lines, odd ids, a bad row) goes row by row
    through `csv`, with the same results and the same skipped rows."""
    path = directory / "ratings.csv"
    next(_rows(path, RATINGS_COLUMNS), None)  # raises on a missing file or column
    with path.open("rb") as handle:
        first = handle.readline()
        header = next(csv.reader([first.decode("utf-8")]))
        columns = tuple(header.index(c) for c in RATINGS_COLUMNS)
        line = 1  # the last line read
        while rows := handle.readlines(BLOCK_BYTES):
            block = _numeric_block(rows, len(header), columns, line, known_movies, skip)
            if block is None:
                block = _csv_block(rows, columns, line, known_movies, skip)
            line += len(rows)
            if len(block):
                yield block


def _numeric_block(
    rows: list[bytes],
    width: int,
    columns: tuple[int, ...],
    line: int,
    known_movies: set[str],
    skip: Skip,
) -> RatingBlock | None:
    """The fast path, or None when the block is not plain numeric rows of `width` fields."""
    text = b"".join(rows).replace(b"\r\n", b"\n")  # csv.writer's line ends
    if not text.endswith(b"\n"):
        text += b"\n"  # the file's last row
    if text.translate(None, b"0123456789.,\n"):
        return None  # other characters
    if b",," in text or b"\n," in text or b",\n" in text or b"\n\n" in text or text[:1] in b",\n":
        return None  # an empty field or a blank line
    chars = np.frombuffer(text, dtype=np.uint8)
    separators = np.flatnonzero((chars == ord(",")) | (chars == ord("\n")))
    row_ends = chars[separators[width - 1 :: width]] == ord("\n")
    if len(separators) != width * len(rows) or not row_ends.all():
        return None  # a row with more or fewer fields
    fields = text[:-1].replace(b"\n", b",").split(b",")
    u, m, r, t = columns
    try:
        ratings = np.array(fields[r::width]).astype(np.float64)
        timestamps = np.array(fields[t::width]).astype(np.float64)
    except ValueError:  # "1.2.3", "."
        return None
    users = b",".join(fields[u::width]).decode().split(",")
    movies = b",".join(fields[m::width]).decode().split(",")
    lines = np.arange(line + 1, line + 1 + len(rows), dtype=np.int64)
    unique, inverse = np.unique(np.array(movies), return_inverse=True)
    known = np.array([movie in known_movies for movie in unique.tolist()], dtype=bool)
    usable = np.isfinite(ratings) & known[inverse]
    if not usable.all():
        for i in np.flatnonzero(~usable).tolist():
            if not math.isfinite(ratings[i]):
                skip("ratings.csv", int(lines[i]), "ratings_bad_rows", "missing id or rating")
            else:
                message = f"unknown movie id {movies[i]}"
                skip("ratings.csv", int(lines[i]), "ratings_unknown_movie", message)
        keep = np.flatnonzero(usable)
        users = [users[i] for i in keep.tolist()]
        movies = [movies[i] for i in keep.tolist()]
        lines, ratings, timestamps = lines[keep], ratings[keep], timestamps[keep]
    return RatingBlock(lines, users, movies, ratings, timestamps)


def _csv_block(
    rows: list[bytes], columns: tuple[int, ...], line: int, known_movies: set[str], skip: Skip
) -> RatingBlock:
    """The general path: one `csv` row at a time (quoted fields, spaces, bad rows)."""
    u, m, r, t = columns
    lines: list[int] = []
    users: list[str] = []
    movies: list[str] = []
    ratings: list[float] = []
    timestamps: list[float] = []
    reader = csv.reader(row.decode("utf-8") for row in rows)
    for row in reader:
        if not row:  # a blank line, as DictReader skipped it
            continue
        number = line + reader.line_num
        try:
            user_id, movie_id = row[u].strip(), row[m].strip()
            rating, timestamp = float(row[r]), float(row[t])
        except (IndexError, ValueError):
            skip("ratings.csv", number, "ratings_bad_rows", "unparsable value")
            continue
        if not user_id or not movie_id or not math.isfinite(rating):
            skip("ratings.csv", number, "ratings_bad_rows", "missing id or rating")
            continue
        if movie_id not in known_movies:
            skip("ratings.csv", number, "ratings_unknown_movie", f"unknown movie id {movie_id}")
            continue
        lines.append(number)
        users.append(user_id)
        movies.append(movie_id)
        ratings.append(rating)
        timestamps.append(timestamp)
    return RatingBlock(
        np.array(lines, dtype=np.int64),
        users,
        movies,
        np.array(ratings, dtype=np.float64),
        np.array(timestamps, dtype=np.float64),
    )


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
    blocks: Iterator[RatingBlock], movies: list[str], report: Counter[str], path: Path
) -> Ratings:
    """One rating per (user, movie): the latest (a tie: the later row); training learns from each
    pair once. Rows are kept in compact arrays, and duplicates dropped by one sort at the end."""
    users: dict[str, int] = {}
    movie_index = {movie_id: i for i, movie_id in enumerate(movies)}
    user_codes: list[np.ndarray] = []
    movie_codes: list[np.ndarray] = []
    stars: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for block in blocks:
        # A dictionary step per distinct id of the block, not per row; users numbered in the
        # order they first appear.
        unique, first, inverse = np.unique(
            np.array(block.user_ids), return_index=True, return_inverse=True
        )
        codes = np.empty(len(unique), dtype=np.int32)
        for i in np.argsort(first, kind="stable").tolist():
            codes[i] = users.setdefault(str(unique[i]), len(users))
        user_codes.append(codes[inverse])
        unique, inverse = np.unique(np.array(block.movie_ids), return_inverse=True)
        indices = np.array([movie_index[m] for m in unique.tolist()], dtype=np.int32)
        movie_codes.append(indices[inverse])
        stars.append(block.ratings.astype(np.float32))
        times.append(block.timestamps.astype(np.int64))
    if not user_codes:
        raise DataError(f"{path}: no usable ratings")
    user_index = np.concatenate(user_codes)
    movie_codes_np = np.concatenate(movie_codes)
    timestamps = np.concatenate(times)
    del user_codes, movie_codes, times
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
        user_index=user_index[kept],
        movie_index=movie_codes_np[kept],
        ratings=np.concatenate(stars)[kept],
        timestamps=timestamps[kept],
    )

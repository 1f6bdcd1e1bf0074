"""The store's records and the one place each rule about them is written.

Ids, text, years, list sizes, link ids and ratings are defined here once; the request schemas,
the webhook's payload (`service/store/fields.py`, their pydantic form) and both backends'
checks before a write all use these.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from service.store.errors import InvalidRecord

EventKind = Literal["watch", "rate"]
ChangeOp = Literal["upsert", "delete"]

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1_000
MAX_LIST_ITEMS = 100  # genres or tags of one movie
MAX_ITEM_LENGTH = 100  # one genre or tag
MIN_YEAR, MAX_YEAR = 1800, 2200
MIN_RATING, MAX_RATING = 0.5, 5.0  # MovieLens' half-star scale
MAX_LINK_DIGITS = 12
LINK_ID_PATTERN = rf"^[0-9]{{1,{MAX_LINK_DIGITS}}}$"  # an IMDb "tt" id's digits, or a TMDB id
GENRE_SEPARATOR = ","  # filters take genres comma-separated, so no genre may hold a comma
ID_SEPARATOR = "|"  # stored records join ids with it, so no id may hold one

# C0 and C1 controls (CR/LF, NUL, ESC...), line/paragraph separators and the bidi embeddings,
# overrides and isolates: text that would reorder or break what a client displays or logs.
_UNSAFE_CHARS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE_CHARS}]")
# An id: no separator, no unsafe character (the pattern the API's path and body types apply).
ID_PATTERN = f"^[^{re.escape(ID_SEPARATOR)}{_UNSAFE_CHARS}]+$"
_LINK_ID = re.compile(LINK_ID_PATTERN)


def text_problem(value: object, max_length: int, forbidden: str = "") -> str | None:
    """What is wrong with a catalog text field (title, genre, tag), or None when it is fine.

    The one rule for catalog text, used by the store before writing and by the request schemas
    for their 422 message: non-empty, trimmed, bounded, and free of control and bidi characters.
    """
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if bad := _UNSAFE_TEXT.search(value):
        return f"contains the control or bidi character U+{ord(bad.group()):04X}"
    for char in forbidden:
        if char in value:
            return f"contains {char!r}"
    return None


@dataclass(frozen=True, slots=True)
class Movie:
    id: str
    title: str
    genres: tuple[str, ...] = ()
    year: int | None = None
    tags: tuple[str, ...] = ()
    version: int = 0
    deleted: bool = False
    imdb_id: str | None = None  # digits of an IMDb "tt" id, from MovieLens links.csv
    tmdb_id: str | None = None

    def content_json(self) -> str:
        """Canonical serialisation of what the movie *is* (not its version or deleted flag).

        Comparing it decides whether an upsert is a change at all, so replays and re-imports
        append nothing to the change log. Link ids appear only when set, so a movie without
        them serialises exactly as it did before they existed.
        """
        links = {k: v for k, v in (("imdb_id", self.imdb_id), ("tmdb_id", self.tmdb_id)) if v}
        return json.dumps(
            {
                "title": self.title,
                "genres": list(self.genres),
                "year": self.year,
                "tags": list(self.tags),
                **links,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_content(cls, movie_id: str, content: str, version: int, deleted: bool) -> Movie:
        data: dict[str, Any] = json.loads(content) if content else {"title": ""}
        return cls(
            id=movie_id,
            title=data["title"],
            genres=tuple(data.get("genres", ())),
            year=data.get("year"),
            tags=tuple(data.get("tags", ())),
            version=version,
            deleted=deleted,
            imdb_id=data.get("imdb_id"),
            tmdb_id=data.get("tmdb_id"),
        )


@dataclass(frozen=True, slots=True)
class Upsert:
    movie: Movie


@dataclass(frozen=True, slots=True)
class Delete:
    movie_id: str


MovieChange = Upsert | Delete


@dataclass(frozen=True, slots=True)
class Event:
    movie_id: str
    kind: EventKind
    timestamp: float
    rating: float | None = None


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    seq: int
    movie_id: str
    op: ChangeOp
    version: int
    accepted_at: float  # unix seconds, when the write was accepted


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one atomic catalog write did. A replayed dedupe key reports the original range;
    `conflict`: the key was claimed by a different body (nothing written)."""

    duplicate: bool
    first_seq: int | None = None
    last_seq: int | None = None
    versions: Mapping[str, int] = field(default_factory=dict)
    conflict: bool = False

    @property
    def applied(self) -> int:
        if self.first_seq is None or self.last_seq is None:
            return 0
        return self.last_seq - self.first_seq + 1


def id_problem(value: object) -> str | None:
    """What is wrong with a user or movie id, or None when it is fine."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        return f"must be a non-empty string of at most {MAX_ID_LENGTH} characters"
    if ID_SEPARATOR in value or _UNSAFE_TEXT.search(value):
        return f"{value!r} contains {ID_SEPARATOR!r} or a control or bidi character"
    return None


def _check_id(value: str, what: str) -> None:
    if problem := id_problem(value):
        raise InvalidRecord(f"{what} {problem}")


def _check_ids(values: Collection[str], what: str) -> None:
    """`_check_id` of many ids in a few C calls (one search over them joined by a space, an
    allowed character); only when something is wrong does each id get its own check and
    message."""
    try:
        joined = " ".join(values)
        sizes_fine = min(map(len, values), default=1) > 0
        sizes_fine &= max(map(len, values), default=0) <= MAX_ID_LENGTH
    except TypeError:  # not a string
        joined, sizes_fine = "", False
    if not sizes_fine or ID_SEPARATOR in joined or _UNSAFE_TEXT.search(joined):
        for value in values:
            _check_id(value, what)


def validate_movie(movie: Movie) -> None:
    """Reject what would corrupt the store or the index; both backends call it before writing."""
    _check_id(movie.id, "movie id")
    if problem := text_problem(movie.title, MAX_TEXT_LENGTH):
        raise InvalidRecord(f"movie {movie.id}: title {problem}")
    for name, items, forbidden in (
        ("genres", movie.genres, ID_SEPARATOR + GENRE_SEPARATOR),
        ("tags", movie.tags, ID_SEPARATOR),
    ):
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidRecord(f"movie {movie.id}: more than {MAX_LIST_ITEMS} {name}")
        for item in items:
            if problem := text_problem(item, MAX_ITEM_LENGTH, forbidden):
                raise InvalidRecord(f"movie {movie.id}: {name} entry {item!r} {problem}")
    if movie.year is not None and not MIN_YEAR <= movie.year <= MAX_YEAR:
        raise InvalidRecord(f"movie {movie.id}: year {movie.year} outside {MIN_YEAR}..{MAX_YEAR}")
    for name, link in (("imdb_id", movie.imdb_id), ("tmdb_id", movie.tmdb_id)):
        if link is not None and not (isinstance(link, str) and _LINK_ID.match(link)):
            raise InvalidRecord(
                f"movie {movie.id}: {name} {link!r} is not 1..{MAX_LINK_DIGITS} digits"
            )


def validate_changes(changes: Sequence[MovieChange]) -> None:
    for change in changes:
        if isinstance(change, Upsert):
            validate_movie(change.movie)
        elif isinstance(change, Delete):
            _check_id(change.movie_id, "movie id")
        else:
            raise InvalidRecord(f"unknown change {change!r}")


def validate_event(user_id: str, event: Event) -> None:
    validate_events(user_id, [event])


def validate_user_id(user_id: str) -> None:
    _check_id(user_id, "user id")


def validate_events(user_id: str, events: Sequence[Event]) -> None:
    """`validate_event` for each event, the movie ids all at once (an import checks 25M)."""
    validate_user_id(user_id)
    _check_ids({event.movie_id for event in events}, "movie id")
    for event in events:
        if event.kind not in ("watch", "rate"):
            raise InvalidRecord(f"event kind must be 'watch' or 'rate', not {event.kind!r}")
        rating = event.rating
        if event.kind == "rate" and (rating is None or not MIN_RATING <= rating <= MAX_RATING):
            raise InvalidRecord(f"a 'rate' event needs a rating from {MIN_RATING} to {MAX_RATING}")
        if not math.isfinite(event.timestamp) or event.timestamp < 0:
            raise InvalidRecord("event timestamp must be a finite number of seconds since 1970")


def plausible_ratings(ratings: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Which (rating, timestamp) rows pass `validate_event`'s value checks, for whole columns at
    once; only the other rows need `validate_event` itself (which has the message)."""
    with np.errstate(invalid="ignore"):
        fine = (ratings >= MIN_RATING) & (ratings <= MAX_RATING)
        return np.asarray(fine & np.isfinite(timestamps) & (timestamps >= 0))


@dataclass(frozen=True, slots=True)
class Promotion:
    """One move of the serving pointer: which version, when, why, and what it replaced."""

    version: str
    at: float
    note: str = ""
    previous: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"version": self.version, "at": self.at, "note": self.note, "previous": self.previous}
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Promotion:
        data = json.loads(text)
        return cls(str(data["version"]), float(data["at"]), str(data["note"]), data["previous"])

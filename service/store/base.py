"""The store interface: catalog, activity, change log, dedupe and embedding cache.

Two implementations (Redis, SQLite) pass one contract suite (`tests/service/store/`).
"""

from __future__ import annotations

import abc
import json
import math
import re
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from service.store.history import History

EventKind = Literal["watch", "rate"]
ChangeOp = Literal["upsert", "delete"]

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1_000
MAX_LIST_ITEMS = 100
MAX_ITEM_LENGTH = 100
MIN_RATING, MAX_RATING = 0.0, 5.0
GENRE_SEPARATOR = ","  # filters take genres comma-separated, so no genre may hold a comma

# C0 and C1 controls (CR/LF, NUL, ESC...), line/paragraph separators and the bidi embeddings,
# overrides and isolates: text that would reorder or break what a client displays or logs.
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class StoreError(Exception):
    """An expected failure with a message meant for a person (bad URL, unreachable server)."""


class StoreUnavailable(StoreError):
    """The store refused, reset, timed out or ran out of connections: retry later (a 503)."""


class InvalidRecord(StoreError, ValueError):
    """A record that must not be written; nothing of the batch it came in was written."""


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


def pack_dedupe(first: int | None, last: int | None, digest: str) -> str:
    """What a dedupe claim stores: the sequence range it produced and the body's digest."""
    span = f"{first}-{last}" if first is not None else "-"
    return f"{span}|{digest}" if digest else span


def unpack_dedupe(raw: str | bytes) -> tuple[int | None, int | None, str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    span, _, digest = text.partition("|")
    first, _, last = span.partition("-")
    return (int(first), int(last), digest) if first else (None, None, digest)


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


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidRecord(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} chars")
    if "|" in value or _UNSAFE_TEXT.search(value):
        raise InvalidRecord(f"{what} {value!r} contains '|' or a control or bidi character")


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
    if not sizes_fine or "|" in joined or _UNSAFE_TEXT.search(joined):
        for value in values:
            _check_id(value, what)


def validate_movie(movie: Movie) -> None:
    """Reject what would corrupt the store or the index; both backends call it before writing."""
    _check_id(movie.id, "movie id")
    if problem := text_problem(movie.title, MAX_TEXT_LENGTH):
        raise InvalidRecord(f"movie {movie.id}: title {problem}")
    for name, items, forbidden in (
        ("genres", movie.genres, "|" + GENRE_SEPARATOR),
        ("tags", movie.tags, "|"),
    ):
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidRecord(f"movie {movie.id}: more than {MAX_LIST_ITEMS} {name}")
        for item in items:
            if problem := text_problem(item, MAX_ITEM_LENGTH, forbidden):
                raise InvalidRecord(f"movie {movie.id}: {name} entry {item!r} {problem}")
    if movie.year is not None and not 1800 <= movie.year <= 2200:
        raise InvalidRecord(f"movie {movie.id}: year {movie.year} outside 1800..2200")
    for name, link in (("imdb_id", movie.imdb_id), ("tmdb_id", movie.tmdb_id)):
        if link is not None and not (link.isascii() and link.isdigit() and len(link) <= 12):
            raise InvalidRecord(f"movie {movie.id}: {name} {link!r} is not 1..12 digits")


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


def validate_events(user_id: str, events: Sequence[Event]) -> None:
    """`validate_event` for each event, the movie ids all at once (an import checks 25M)."""
    _check_id(user_id, "user id")
    _check_ids({event.movie_id for event in events}, "movie id")
    for event in events:
        if event.kind not in ("watch", "rate"):
            raise InvalidRecord(f"event kind must be 'watch' or 'rate', not {event.kind!r}")
        rating = event.rating
        if event.kind == "rate" and (rating is None or not MIN_RATING <= rating <= MAX_RATING):
            raise InvalidRecord("a 'rate' event needs a rating between 0 and 5")
        if not math.isfinite(event.timestamp) or event.timestamp < 0:
            raise InvalidRecord("event timestamp must be a finite number of seconds since 1970")


def plausible_ratings(ratings: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Which (rating, timestamp) rows pass `validate_event`'s value checks, for whole columns at
    once; only the other rows need `validate_event` itself (which has the message)."""
    with np.errstate(invalid="ignore"):
        fine = (ratings >= MIN_RATING) & (ratings <= MAX_RATING)
        return np.asarray(fine & np.isfinite(timestamps) & (timestamps >= 0))


def events_from_keys(rows: Sequence[str] | Sequence[bytes]) -> list[Event]:
    """Decode format-1 history members (`movie|kind|rating|timestamp`, what stores held before
    the packed record of `service/store/history.py`): the one-time upgrade reads them."""
    if not rows:
        return []
    text = b"|".join(rows).decode() if isinstance(rows[0], bytes) else "|".join(rows)  # type: ignore[arg-type]
    parts = text.split("|")
    if len(parts) != 4 * len(rows):
        raise InvalidRecord("a stored event key does not have four '|'-separated fields")
    return [
        Event(movie_id, kind, float(timestamp), float(rating) if rating else None)  # type: ignore[arg-type]
        for movie_id, kind, rating, timestamp in zip(
            parts[0::4], parts[1::4], parts[2::4], parts[3::4], strict=True
        )
    ]


class Store(abc.ABC):
    """Async interface shared by both backends; see the contract tests for its promises."""

    activity_max_events: int

    # --- catalog and change log -------------------------------------------------------------
    @abc.abstractmethod
    async def apply_changes(
        self,
        changes: Sequence[MovieChange],
        *,
        dedupe_key: str | None = None,
        dedupe_digest: str = "",
        dedupe_ttl_seconds: int = 7 * 24 * 3600,
    ) -> WriteResult:
        """Claim `dedupe_key`, write the movies and append their change entries, all or nothing.

        The claim keeps `dedupe_digest` (of the delivery's body): the same key with another
        digest writes nothing and reports `conflict` (a key claimed without a digest matches any).

        An upsert identical to the stored live movie, or a delete of a missing or deleted
        movie, is not a change: it gets no version bump and no entry.
        """

    @abc.abstractmethod
    async def get_movies(self, ids: Sequence[str]) -> dict[str, Movie]:
        """Movies by id, deleted ones included (flagged); unknown ids are absent."""

    @abc.abstractmethod
    def iter_movies(self, batch_size: int = 1000) -> AsyncIterator[list[Movie]]:
        """Every live movie, in batches."""

    @abc.abstractmethod
    async def count_movies(self) -> int:
        """Live (not deleted) movies."""

    @abc.abstractmethod
    async def read_changes(
        self, after: int, limit: int = 1000, block_seconds: float = 0.0
    ) -> list[ChangeEntry]:
        """Entries with seq > `after`, oldest first; wait up to `block_seconds` if none."""

    @abc.abstractmethod
    async def head_seq(self) -> int:
        """The last sequence handed out (0 when nothing was ever written)."""

    @abc.abstractmethod
    async def first_retained_seq(self) -> int:
        """The oldest entry still kept; head + 1 when the log holds nothing."""

    @abc.abstractmethod
    async def trim_changes(self, keep_last: int) -> None:
        """Drop all but the newest `keep_last` entries."""

    @abc.abstractmethod
    async def epoch(self) -> str:
        """Changes whenever the store is emptied or recreated, so readers can detect a gap."""

    # --- activity ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_events(self, user_id: str, events: Sequence[Event]) -> None:
        """Record events, keeping only the `activity_max_events` newest by timestamp."""

    async def add_events_bulk(self, events: Mapping[str, Sequence[Event]]) -> None:
        """`add_events` for many users at once (an import): backends write it in one round trip
        and one transaction; this default is one call per user."""
        for user_id, user_events in events.items():
            await self.add_events(user_id, user_events)

    @abc.abstractmethod
    async def recent_history(self, user_id: str, limit: int | None = None) -> History:
        """The newest `limit` (default: all retained) events, newest first, as columns: one
        read of one packed record (the recommendation path)."""

    async def recent_events(self, user_id: str, limit: int | None = None) -> list[Event]:
        """Newest first, as `Event`s (for showing a history)."""
        return (await self.recent_history(user_id, limit)).events()

    @abc.abstractmethod
    async def count_users(self) -> int: ...

    @abc.abstractmethod
    async def sample_users(self, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` users that have activity, with how many events each keeps."""

    @abc.abstractmethod
    async def count_events(self) -> int: ...

    # --- embedding cache --------------------------------------------------------------------
    @abc.abstractmethod
    async def get_embeddings(
        self, model_version: str, versions: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        """Cached vectors whose movie version matches `versions[id]`; stale ones are misses."""

    @abc.abstractmethod
    async def put_embeddings(
        self, model_version: str, vectors: Mapping[str, tuple[int, np.ndarray]]
    ) -> None:
        """Store (movie version, vector) per movie id for one model version."""

    # --- lifecycle --------------------------------------------------------------------------
    @abc.abstractmethod
    async def upgrade(self) -> None:
        """Convert data written in an older format (format-1 histories) once; `open_store` runs
        it, so a new release reads what an old one wrote."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the backend cannot be reached."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Empty everything; the epoch changes."""

    @abc.abstractmethod
    async def close(self) -> None: ...


def pack_vector(version: int, vector: np.ndarray) -> bytes:
    return (
        int(version).to_bytes(8, "little", signed=False)
        + np.asarray(vector, dtype=np.float32).tobytes()
    )


def unpack_vector(raw: bytes) -> tuple[int, np.ndarray]:
    return int.from_bytes(raw[:8], "little"), np.frombuffer(raw[8:], dtype=np.float32).copy()

"""The store's records and the one place each rule about them is written.

Ids, text, years, list sizes, link ids and ratings are defined here once; the request schemas,
the webhook's payload (`service/store/fields.py`, their pydantic form) and both backends'
checks before a write all use these.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from embeddings.registry.record import is_version
from service.store.errors import InvalidRecord

EventKind = Literal["watch", "rate", "dislike"]
EVENT_KINDS: tuple[EventKind, ...] = ("watch", "rate", "dislike")  # a dislike pushes away
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
        if event.kind not in EVENT_KINDS:
            raise InvalidRecord(
                f"event kind must be one of {', '.join(EVENT_KINDS)}, not {event.kind!r}"
            )
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


class Unchecked(enum.Enum):
    """`promote_model` without a compare-and-set (a typed sentinel: None means "names none")."""

    TOKEN = 0


UNCHECKED = Unchecked.TOKEN


@dataclass(frozen=True)
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


# --- exposures and experiments ----------------------------------------------------------------
STRATEGIES = ("personalized", "popular")  # what a variant may serve
SURFACES = ("user", "anonymous", "similar")  # which route showed a list
MAX_EXPERIMENT_NAME = 64
MAX_VARIANTS = 10
# Model versions an experiment's variants may name: each one a replica does not already serve
# costs it an index of its own in memory (~1.2 GiB at 1M movies; docs/decisions/0035).
MAX_EXPERIMENT_MODELS = 2
MAX_WEIGHT = 1_000_000.0
EXPERIMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # also a Prometheus label value
RECOMMENDATION_ID_PATTERN = r"^[0-9a-f]{32}$"
_EXPERIMENT_NAME = re.compile(EXPERIMENT_NAME_PATTERN)
_RECOMMENDATION_ID = re.compile(RECOMMENDATION_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One list shown: who saw which movies (position = index + 1), served how, and when."""

    id: str  # the response's recommendation_id
    subject: str | None  # the user id, or the anonymous session's id; None when not given
    items: tuple[str, ...]
    surface: str
    strategy: str
    model_version: str
    at: float
    experiment: str | None = None
    variant: str | None = None

    def position(self, movie_id: str) -> int | None:
        """1-based rank of `movie_id` in the list, None when it was not shown."""
        try:
            return self.items.index(movie_id) + 1
        except ValueError:
            return None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "subject": self.subject,
                "items": list(self.items),
                "surface": self.surface,
                "strategy": self.strategy,
                "model_version": self.model_version,
                "at": self.at,
                "experiment": self.experiment,
                "variant": self.variant,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Exposure:
        data = json.loads(text)
        return cls(
            id=str(data["id"]),
            subject=data["subject"],
            items=tuple(data["items"]),
            surface=str(data["surface"]),
            strategy=str(data["strategy"]),
            model_version=str(data["model_version"]),
            at=float(data["at"]),
            experiment=data["experiment"],
            variant=data["variant"],
        )


@dataclass(frozen=True, slots=True)
class ExposureLimits:
    """How much the store keeps: every exposure for `ttl_seconds` (the attribution window) and
    at most `log_max_len` of them; a subject's newest `per_subject`."""

    ttl_seconds: float
    log_max_len: int
    per_subject: int


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    strategy: str  # one of STRATEGIES
    model: str | None = None  # "personalized" with this registry version, not the served one

    @property
    def label(self) -> str:
        """`strategy` or `strategy@model`, as the CLI takes it and reports show it."""
        return self.strategy if self.model is None else f"{self.strategy}@{self.model}"


@dataclass(frozen=True, slots=True)
class Experiment:
    """Variants with weights, the first the control. It assigns from `created_at` until it is
    stopped or `ends_at` passes; its counts are kept until `expires_at`."""

    name: str
    variants: tuple[Variant, ...]
    created_at: float
    ends_at: float
    expires_at: float
    stopped_at: float | None = None

    def active(self, now: float) -> bool:
        return self.stopped_at is None and now < self.ends_at

    @property
    def control(self) -> Variant:
        return self.variants[0]

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "variants": [
                    [v.name, v.weight, v.strategy] + ([v.model] if v.model else [])
                    for v in self.variants
                ],
                "created_at": self.created_at,
                "ends_at": self.ends_at,
                "expires_at": self.expires_at,
                "stopped_at": self.stopped_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Experiment:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            variants=tuple(
                Variant(str(v[0]), float(v[1]), str(v[2]), str(v[3]) if len(v) > 3 else None)
                for v in data["variants"]
            ),
            created_at=float(data["created_at"]),
            ends_at=float(data["ends_at"]),
            expires_at=float(data["expires_at"]),
            stopped_at=data["stopped_at"],
        )


def experiment_problem(name: str, variants: Sequence[Variant]) -> str | None:
    """What is wrong with an experiment's definition, or None (the CLI, the route and both
    backends apply this one rule)."""
    if not _EXPERIMENT_NAME.match(name):
        return (
            f"experiment name {name[:80]!r} must be 1-{MAX_EXPERIMENT_NAME} of a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    if not 2 <= len(variants) <= MAX_VARIANTS:
        return f"an experiment needs 2 to {MAX_VARIANTS} variants, not {len(variants)}"
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        return "variant names must be distinct"
    for v in variants:
        if not _EXPERIMENT_NAME.match(v.name):
            return f"variant name {v.name[:80]!r} must be 1-{MAX_EXPERIMENT_NAME} of a-z 0-9 _ . -"
        if not (math.isfinite(v.weight) and 0 < v.weight <= MAX_WEIGHT):
            return f"variant {v.name!r}: weight must be above 0 and at most {MAX_WEIGHT:g}"
        if v.strategy not in STRATEGIES:
            return f"variant {v.name!r}: strategy must be one of {', '.join(STRATEGIES)}"
        if v.model is not None and not is_version(v.model):
            return f"variant {v.name!r}: {v.model[:80]!r} is not a model version name"
        if v.model is not None and v.strategy != "personalized":
            return f"variant {v.name!r}: only a personalized variant names a model"
    if len({v.model for v in variants if v.model is not None}) > MAX_EXPERIMENT_MODELS:
        return f"an experiment names at most {MAX_EXPERIMENT_MODELS} model versions"
    return None


def validate_experiment(experiment: Experiment) -> None:
    if problem := experiment_problem(experiment.name, experiment.variants):
        raise InvalidRecord(problem)


def validate_exposures(exposures: Sequence[Exposure]) -> None:
    for exposure in exposures:
        if not _RECOMMENDATION_ID.match(exposure.id):
            raise InvalidRecord(f"recommendation id {exposure.id[:80]!r} is not 32 hex digits")
        if exposure.subject is not None:
            _check_id(exposure.subject, "exposure subject")
        _check_ids(exposure.items, "movie id")
        if len(exposure.items) > MAX_LIST_ITEMS:
            raise InvalidRecord(f"an exposure shows at most {MAX_LIST_ITEMS} movies")
        if exposure.surface not in SURFACES or exposure.strategy not in STRATEGIES:
            raise InvalidRecord(f"exposure {exposure.id}: unknown surface or strategy")


MAX_KEPT_EXPERIMENTS = 20


def admit_experiment(
    kept: Sequence[Experiment], new: Experiment, now: float
) -> tuple[str | None, list[str]]:
    """Whether `new` may be created beside `kept`: (a conflict's message or None, the names
    to drop with their counts first). Dropped: those past `expires_at`, then the oldest ended
    ones beyond MAX_KEPT_EXPERIMENTS - 1, so the store never holds more than that many."""
    if any(e.name == new.name for e in kept if e.expires_at > now):
        return f"an experiment named {new.name!r} exists (names are not reused)", []
    if running := [e.name for e in kept if e.active(now) and e.expires_at > now]:
        return f"experiment {running[0]!r} is running: stop it first (one at a time)", []
    drop = [e.name for e in kept if e.expires_at <= now]
    left = sorted((e for e in kept if e.expires_at > now), key=lambda e: e.created_at)
    while len(left) > MAX_KEPT_EXPERIMENTS - 1:
        drop.append(left.pop(0).name)
    return None, drop

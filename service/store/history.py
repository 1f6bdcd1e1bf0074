"""A user's history as one packed record: read in one round trip, decoded by NumPy in one call.

Layout (format 2; big-endian, so the bytes of a non-negative double order like its value):

    4 bytes        n, the number of entries
    n x 17 bytes   entries newest first: timestamp >f8, rating >f8 (NaN: none), kind u1
    the rest       the n movie ids joined by '|' (an id cannot hold '|'), in the same order

Movie ids are kept as they are (not index rows), so a record survives any catalog change. One
entry is its 17 fixed bytes followed by its id: identical events are identical entries and
collapse, which keeps imports idempotent. Entries are ordered by those bytes, descending:
newest first, ties broken the same way on both backends. Redis merges records in Lua
(`service/store/redis.py`), SQLite with `merge` below; the contract suite holds them equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from embeddings.weights import DISLIKE_MAX_RATING, WATCH, disliked_ratings, rating_weights
from service.store.errors import InvalidRecord
from service.store.records import Event, EventKind

# What Redis holds (service/store/keys.py): 1 was a sorted set of "movie|kind|rating|ts" strings
# per user; 2 this record under `history:<id>`, without a TTL, and a set of every user id; 3 the
# same record under a hash-tagged key with a TTL, and no set.
FORMAT = 3
HEADER = 4
FIXED = np.dtype([("ts", ">f8"), ("rating", ">f8"), ("kind", "u1")])
# A kind's code is its position: append new kinds, never reorder (stored records keep codes).
KINDS: tuple[EventKind, ...] = ("watch", "rate", "dislike")
_KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}
_NO_RATING = np.float64("nan")


@dataclass(frozen=True, slots=True)
class History:
    """A user's retained events newest first, as columns (no per-event objects)."""

    movie_ids: list[str]
    kinds: np.ndarray  # uint8: 0 watch, 1 rate, 2 dislike
    ratings: np.ndarray  # float64, NaN when the event has none
    timestamps: np.ndarray  # float64 unix seconds

    def __len__(self) -> int:
        return len(self.movie_ids)

    def weights(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """`embeddings.weights.event_weight` of the chosen events, computed in one go."""
        ratings = self.ratings[rows]
        weights = rating_weights(ratings)  # NaN (no rating) stays NaN, then counts as a watch
        weights[(self.kinds[rows] != _KIND_CODE["rate"]) | np.isnan(weights)] = WATCH
        return weights

    def disliked(self, at: float = DISLIKE_MAX_RATING) -> np.ndarray:
        """Which events say "not this": a `dislike`, or a rating at or below `at`
        (`embeddings.weights.disliked_ratings`, the rule training shares)."""
        rated = self.kinds == _KIND_CODE["rate"]
        return np.asarray(
            (self.kinds == _KIND_CODE["dislike"]) | (rated & disliked_ratings(self.ratings, at))
        )

    def liked(self, at: float) -> np.ndarray:
        """Which events may explain a recommendation: a watch, or a rating of at least `at`
        (a dislike or a lukewarm rating is not a reason a user would agree with)."""
        rated = self.kinds == _KIND_CODE["rate"]
        with np.errstate(invalid="ignore"):
            return np.asarray((self.kinds == _KIND_CODE["watch"]) | (rated & (self.ratings >= at)))

    def events(self) -> list[Event]:
        """As `Event`s, for callers that show them one by one (not the recommendation path)."""
        return [
            Event(mid, KINDS[kind], ts, None if rating != rating else rating)
            for mid, kind, rating, ts in zip(
                self.movie_ids,
                self.kinds.tolist(),
                self.ratings.tolist(),
                self.timestamps.tolist(),
                strict=True,
            )
        ]

    @classmethod
    def of(cls, events: Sequence[Event]) -> History:
        """Events given newest first (a request body) as a history, order unchanged."""
        return cls(
            [e.movie_id for e in events],
            np.array([_KIND_CODE[e.kind] for e in events], np.uint8),
            np.array([_NO_RATING if e.rating is None else e.rating for e in events], np.float64),
            np.array([e.timestamp for e in events], np.float64),
        )


EMPTY = History([], np.zeros(0, np.uint8), np.zeros(0, np.float64), np.zeros(0, np.float64))


def decode(record: bytes | None, limit: int | None = None) -> History:
    """A packed record as columns: one `frombuffer` and one split, whatever its length."""
    if not record:
        return EMPTY
    n = int.from_bytes(record[:HEADER], "big")
    ids_at = HEADER + n * FIXED.itemsize
    if len(record) < ids_at:
        raise InvalidRecord(f"a history record of {len(record)} bytes cannot hold {n} entries")
    movie_ids = record[ids_at:].decode().split("|")
    if len(movie_ids) != n:
        raise InvalidRecord(f"a history record holds {len(movie_ids)} ids for {n} entries")
    fixed = np.frombuffer(record, FIXED, count=n, offset=HEADER)
    if limit is not None and limit < n:
        fixed, movie_ids = fixed[:limit], movie_ids[:limit]
    return History(
        movie_ids,
        fixed["kind"].copy(),
        fixed["rating"].astype(np.float64),
        fixed["ts"].astype(np.float64),
    )


def entry(event: Event) -> bytes:
    """One event's bytes: the fixed part, then its id. Signed zeros are folded (-0.0 == 0.0)."""
    fixed = np.zeros(1, FIXED)
    fixed["ts"] = float(event.timestamp) + 0.0
    fixed["rating"] = _NO_RATING if event.rating is None else float(event.rating) + 0.0
    fixed["kind"] = _KIND_CODE[event.kind]
    return fixed.tobytes() + event.movie_id.encode()


def entries(record: bytes | None) -> list[bytes]:
    """A record's entries, newest first (the write path: SQLite's merge, migrations)."""
    if not record:
        return []
    n = int.from_bytes(record[:HEADER], "big")
    width = FIXED.itemsize
    ids_at = HEADER + n * width
    ids = record[ids_at:].split(b"|") if n else []
    return [record[HEADER + i * width : HEADER + (i + 1) * width] + ids[i] for i in range(n)]


def pack(kept: Sequence[bytes]) -> bytes:
    """Entries, already in order, as one record."""
    width = FIXED.itemsize
    return (
        len(kept).to_bytes(HEADER, "big")
        + b"".join(e[:width] for e in kept)
        + b"|".join(e[width:] for e in kept)
    )


def merge(record: bytes | None, new: Iterable[bytes], limit: int) -> bytes:
    """The record with `new` entries added, identical ones collapsed, the `limit` newest kept."""
    return pack(sorted(set(entries(record)).union(new), reverse=True)[:limit])


def count(record: bytes | None) -> int:
    return int.from_bytes(record[:HEADER], "big") if record else 0

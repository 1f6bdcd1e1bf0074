"""The training dataset read from the live store at one cut (decision 25).

The cut is a change-log sequence for the catalog and a time T for the events, both fixed before
anything is read: the catalog is every live movie as of that sequence, the events every user's
retained history with a timestamp at or before T. A catalog scan is not a snapshot (a webhook may
land in the middle of it), so when the head moved during the scan the movies the change log names
since are read again, until the head holds still across a re-read; a log trimmed past the scan's
start means scanning again. After `CATCH_UP_ROUNDS` rounds of a head that never holds still the
read gives up (`CutError`) rather than train on a catalog of no single moment.

Events become `embeddings.data.Ratings`, the form training reads from MovieLens: a `rate` keeps
its rating, a `watch` is a 5-star rating (`WATCH_RATING`: the user tower weighs both 1.0, as the
service does), and each (user, movie) pair keeps its latest event. Users are in id order and each
user's events oldest first, so the same store content gives the same dataset, hence the same
model version, whatever order the store lists users in.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from embeddings.data import DataError, Dataset, Ratings
from embeddings.data import Movie as TrainingMovie
from embeddings.weights import MAX_RATING
from service.store import Movie, Store
from service.store.history import KINDS, History

CATALOG_BATCH = 5000
HISTORY_BATCH = 500  # users a page
CHANGES_PAGE = 1000
CATCH_UP_ROUNDS = 5
WATCH_RATING = MAX_RATING  # embeddings.weights: rating_weights(5.0) == WATCH == 1.0
_RATE = KINDS.index("rate")
_DISLIKE = KINDS.index("dislike")
DISLIKE_RATING = 1.0  # what a `dislike` event trains as: a one-star rating (a dislike)


class CutError(Exception):
    """No consistent cut could be read: the catalog kept changing, or the store was emptied or
    restarted during the read."""


@dataclass(frozen=True)
class Cut:
    """Where the dataset was cut, and what it holds."""

    sequence: int  # the change-log head the catalog is read at
    time: float  # unix seconds, taken before reading: the events at or before it
    epoch: str  # the store's epoch: sequences compare only within one
    movies: int  # live movies at `sequence`
    users: int  # users with at least one event in the dataset
    events: int  # dataset rows: one per (user, movie), its latest event
    catch_ups: int  # re-reads of changed movies because the head moved during the scan

    def to_manifest(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds"),
            "unix_time": round(self.time, 3),
            "epoch": self.epoch,
            "users": self.users,
            "movies": self.movies,
            "events": self.events,
        }


@dataclass(frozen=True)
class StoreDataset:
    dataset: Dataset  # movies in id order, each user's events oldest first
    cut: Cut
    versions: dict[str, int]  # each movie's version at the cut: the vector cache's key


async def read_dataset(
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    catalog_batch: int = CATALOG_BATCH,
    history_batch: int = HISTORY_BATCH,
) -> StoreDataset:
    """The dataset at a cut taken now; `DataError` when it holds nothing to train on."""
    cut_time = clock()
    epoch = await store.epoch()
    catalog, sequence, catch_ups = await read_catalog(store, catalog_batch)
    if not catalog:
        raise DataError(f"the store's catalog is empty at sequence {sequence}: nothing to train")
    movies = sorted(catalog.values(), key=lambda m: m.id)
    events = _Events({m.id: i for i, m in enumerate(movies)}, cut_time)
    async for batch in store.iter_histories(history_batch):
        for user, history in batch:
            events.add(user, history)
    if await store.epoch() != epoch:
        raise CutError("the store was emptied or restarted while it was read: run it again")
    ratings = events.ratings([m.id for m in movies])
    if not len(ratings):
        raise DataError(
            f"the store holds no event of a catalog movie at or before "
            f"{datetime.fromtimestamp(cut_time, UTC).isoformat(timespec='seconds')}"
        )
    dataset = Dataset(
        movies=[TrainingMovie(m.id, m.title, m.year, m.genres, m.tags) for m in movies],
        ratings=ratings,
        report=+events.report,  # the counts that are not 0
    )
    cut = Cut(sequence, cut_time, epoch, len(movies), len(ratings.users), len(ratings), catch_ups)
    return StoreDataset(dataset, cut, {m.id: m.version for m in movies})


async def read_catalog(
    store: Store, batch_size: int = CATALOG_BATCH, rounds: int = CATCH_UP_ROUNDS
) -> tuple[dict[str, Movie], int, int]:
    """Every live movie as of one change-log sequence: (movies by id, the sequence, catch-ups).

    A movie no change touched between the head read before the scan and the head read after it
    was the same during the whole scan; the ones the log names are read again after the new head
    is known, and the answer stands once the head has not moved across such a re-read.
    """
    head = await store.head_seq()
    movies = await _scan(store, batch_size)
    for catch_ups in range(rounds + 1):
        latest = await store.head_seq()
        if latest == head:
            return movies, head, catch_ups
        if catch_ups == rounds:
            break
        changed = await _changed_between(store, head, latest)
        if changed is None:  # the log no longer holds that range: scan again from `latest`
            movies = await _scan(store, batch_size)
        else:
            found = await store.get_movies(sorted(changed))
            for movie_id in changed:
                movie = found.get(movie_id)
                if movie is None or movie.deleted:
                    movies.pop(movie_id, None)
                else:
                    movies[movie_id] = movie
        head = latest
    raise CutError(
        f"the catalog changed during each of {rounds} re-reads (the change log's head moved "
        f"to {latest}): no consistent cut; run it again when webhooks are quieter"
    )


async def _scan(store: Store, batch_size: int) -> dict[str, Movie]:
    return {movie.id: movie async for batch in store.iter_movies(batch_size) for movie in batch}


async def _changed_between(store: Store, after: int, upto: int) -> set[str] | None:
    """Ids of the movies changed in (after, upto]; None when the log lost some of those entries."""
    changed: set[str] = set()
    cursor = after
    while cursor < upto:
        entries = await store.read_changes(cursor, limit=CHANGES_PAGE)
        if not entries or entries[0].seq != cursor + 1:
            return None
        changed.update(entry.movie_id for entry in entries if entry.seq <= upto)
        cursor = entries[-1].seq
    return changed


class _Events:
    """Each user's events as coded rows (movie, rating, time), oldest first, filtered and
    collapsed to one row per movie; what was dropped is counted in `report`."""

    def __init__(self, movie_index: Mapping[str, int], cut_time: float) -> None:
        self.movie_index = movie_index
        self.cut_time = cut_time
        self.users: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.report: Counter[str] = Counter()

    def add(self, user: str, history: History) -> None:
        if user in self.users:  # listed twice by a SCAN: the first reading stands
            return
        n = len(history)
        codes = np.fromiter(
            (self.movie_index.get(m, -1) for m in history.movie_ids), np.int32, count=n
        )
        in_time = history.timestamps <= self.cut_time
        known = codes >= 0
        rows = np.flatnonzero(in_time & known)  # newest first
        _, first = np.unique(codes[rows], return_index=True)
        latest = rows[np.sort(first)][::-1]  # each movie's latest event, oldest first
        rated = (history.kinds[latest] == _RATE) & ~np.isnan(history.ratings[latest])
        ratings = np.where(rated, history.ratings[latest], WATCH_RATING)
        ratings[history.kinds[latest] == _DISLIKE] = DISLIKE_RATING
        self.users[user] = (codes[latest], ratings.astype(np.float32), history.timestamps[latest])
        self.report["events_after_cut"] += int((~in_time).sum())
        self.report["events_unknown_movie"] += int((in_time & ~known).sum())
        self.report["events_superseded"] += len(rows) - len(latest)
        self.report["events_watch_as_5_stars"] += int((~rated).sum())
        self.report["users_without_events"] += int(not len(latest))

    def ratings(self, movie_ids: list[str]) -> Ratings:
        """The rows of users in id order, each user's oldest first."""
        users = sorted(user for user, rows in self.users.items() if len(rows[0]))
        parts = [self.users[user] for user in users]
        sizes = [len(part[0]) for part in parts]
        return Ratings(
            users=users,
            movies=movie_ids,
            user_index=np.repeat(np.arange(len(users), dtype=np.int32), sizes),
            movie_index=np.concatenate([np.zeros(0, np.int32)] + [p[0] for p in parts]),
            ratings=np.concatenate([np.zeros(0, np.float32)] + [p[1] for p in parts]),
            # whole seconds, as MovieLens; the rows' order keeps the order within a second
            timestamps=np.floor(np.concatenate([np.zeros(0)] + [p[2] for p in parts])).astype(
                np.int64
            ),
        )

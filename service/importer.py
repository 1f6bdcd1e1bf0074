"""Loading a parsed MovieLens dataset into the store: idempotent, in atomic batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from service.movielens import MovieLensData
from service.store import Store, Upsert

MOVIE_BATCH = 1000


@dataclass(frozen=True)
class ImportSummary:
    movies: int
    movies_changed: int
    users: int
    events_read: int
    events_stored: int
    seconds: float


async def import_movielens(
    store: Store, data: MovieLensData, advance: Callable[[int], None] = lambda _: None
) -> ImportSummary:
    """Upsert every movie (unchanged ones append nothing) and record every rating as an event.

    `advance` is called with the number of records just written (movies and events alike).
    """
    started = time.perf_counter()
    changed = 0
    for start in range(0, len(data.movies), MOVIE_BATCH):
        batch = data.movies[start : start + MOVIE_BATCH]
        result = await store.apply_changes([Upsert(m) for m in batch])
        changed += result.applied
        advance(len(batch))
    for user_id, events in data.events.items():
        await store.add_events(user_id, events)
        advance(len(events))
    return ImportSummary(
        movies=await store.count_movies(),
        movies_changed=changed,
        users=await store.count_users(),
        events_read=data.event_count,
        events_stored=await store.count_events(),
        seconds=time.perf_counter() - started,
    )

"""Loading a parsed MovieLens dataset into the store: idempotent, in atomic batches.

Ratings stream from the file in chunks of `EVENT_CHUNK`, each written with one
`add_events_bulk` (one Redis script call, one per hash slot on a cluster, one SQLite
transaction): 25M ratings never sit in memory, and a chunk is either all written or not at all
(a rerun fills the gap: events collapse)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.ingest.movielens import MovieLensData
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

    `advance` is called with the number of records just handled (movies and ratings.csv rows).
    """
    started = time.perf_counter()
    changed = 0
    for start in range(0, len(data.movies), MOVIE_BATCH):
        batch = data.movies[start : start + MOVIE_BATCH]
        result = await store.apply_changes([Upsert(m) for m in batch])
        changed += result.applied
        advance(len(batch))
    # The next chunk is parsed in a thread while the store writes this one: the parse (Python)
    # and the write (the store's server, or SQLite's thread) overlap on two cores.
    chunks = data.event_chunks()
    chunk = await asyncio.to_thread(next, chunks, None)
    while chunk is not None:
        write = asyncio.ensure_future(store.add_events_bulk(chunk.events))
        try:
            following = await asyncio.to_thread(next, chunks, None)
        finally:
            await write
        advance(chunk.rows)
        chunk = following
    return ImportSummary(
        movies=await store.count_movies(),
        movies_changed=changed,
        users=await store.count_users(),
        events_read=data.events_read,
        events_stored=await store.count_events(),
        seconds=time.perf_counter() - started,
    )

"""A movie's vector under a model: the store's cache where it matches, else the movie tower.

Two callers: a catalog change (a few movies, `vectors_for`) and a model swap, which re-embeds
the whole served catalog (`catalog_vectors`): there the ids and movie versions come from the
served index's columns, so the catalog is not read and decoded again (at 1M movies that read
was 9.5 s of decoding and full garbage collections on the event loop, and a gigabyte of
objects at the swap's peak), and only movies missing from the cache (changed since the
version's cut) are read and embedded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

import numpy as np

from service.store import Movie, Store, StoreUnavailable
from service.towers import Towers

T = TypeVar("T")
SWAP_BATCH = 1000  # cache entries a read at a swap: each read's decode is a few ms on the loop
ATTEMPTS = 3  # a bulk read that times out is retried, not the whole swap restarted


async def vectors_for(store: Store, towers: Towers, movies: Sequence[Movie]) -> np.ndarray:
    """Embeddings from the store's cache where the (model, movie version) matches, else the tower.

    What the tower computes is written back, so other replicas and restarts reuse it.
    """
    if not movies:
        return np.zeros((0, towers.dim), np.float32)
    cached = await store.get_embeddings(towers.version, {m.id: m.version for m in movies})
    misses = [m for m in movies if m.id not in cached]
    if misses:
        fresh = await asyncio.to_thread(towers.embed_movies, misses)
        computed = {m.id: (m.version, fresh[i]) for i, m in enumerate(misses)}
        await store.put_embeddings(towers.version, computed)
        cached.update({mid: vec for mid, (_, vec) in computed.items()})
    return np.stack([cached[m.id] for m in movies]).astype(np.float32)


async def catalog_vectors(
    store: Store, towers: Towers, ids: Sequence[str], versions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`towers`' vector of each movie at its version ([n, dim]), and which rows have one.

    A movie the store no longer holds has none (the change log deletes it after the swap's
    catch-up); one changed since gets its current record's vector (the catch-up re-applies it).
    """
    vectors = np.zeros((len(ids), towers.dim), np.float32)
    found = np.zeros(len(ids), bool)
    for start in range(0, len(ids), SWAP_BATCH):
        chunk = list(ids[start : start + SWAP_BATCH])
        wanted = dict(zip(chunk, versions[start : start + SWAP_BATCH].tolist(), strict=True))
        cached = await _patiently(partial(store.get_embeddings, towers.version, wanted))
        misses = [mid for mid in chunk if mid not in cached]
        if misses:
            records = await _patiently(partial(store.get_movies, misses))
            present = [records[m] for m in misses if m in records and not records[m].deleted]
            fresh = await _patiently(partial(vectors_for, store, towers, present))
            cached.update(zip((m.id for m in present), fresh, strict=True))
        for offset, mid in enumerate(chunk):
            vector = cached.get(mid)
            if vector is not None:
                vectors[start + offset] = vector
                found[start + offset] = True
    return vectors, found


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """A bulk read at a swap, retried on a timeout: one slow page must not discard minutes of
    work (each call keeps its own deadline, so a store that is down still fails in seconds)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await call()
        except StoreUnavailable:
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")

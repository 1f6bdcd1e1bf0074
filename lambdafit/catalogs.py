"""The catalogs measured: synthetic ones of any size, and the bundled MovieLens.

Synthetic catalogs are `bench.synthetic_catalog`'s (the benchmarks' own); MovieLens is
imported and its
movie-tower vectors cached. Either way every vector is in the store's embedding cache, so "state
load" everywhere means reading vectors from the store, as any restart of the container does.

Every run writes its catalogs anew (a million movies take well under a minute), so a catalog
always matches the store code it is read with: on SQLite a file in the work directory, on Redis
(one URL) the whole store, emptied first.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench.synthetic_catalog import BATCH, Say, write_synthetic
from service.store import Store, open_store

USERS = 12
HISTORY = 30


@dataclass(frozen=True)
class Catalog:
    name: str
    size: int
    store_url: str
    users: tuple[str, ...]
    synthetic: bool
    prepare_seconds: float


def _store_url(work: Path, stem: str, redis_url: str | None) -> str:
    """The Redis URL as given, or a new SQLite file (any earlier one removed)."""
    if redis_url is not None:
        return redis_url
    path = (work / f"{stem}.db").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


async def _fresh_store(url: str) -> Store:
    store = await open_store(url)
    await store.clear()
    return store


def synthetic(
    work: Path,
    size: int,
    model_version: str,
    dim: int,
    *,
    redis_url: str | None = None,
    seed: int = 0,
    say: Say = print,
) -> Catalog:
    """A synthetic catalog of `size` movies with cached vectors and a few users with history."""
    name = f"synthetic {size:,}"
    url = _store_url(work, f"synthetic-{size}", redis_url)
    say(f"{name}: writing movies, vectors and users to {url}")
    started = time.perf_counter()

    async def write() -> tuple[str, ...]:
        store = await _fresh_store(url)
        try:
            return await write_synthetic(
                store,
                size,
                model_version,
                users=USERS,
                history=HISTORY,
                dim=dim,
                seed=seed,
                say=say,
            )
        finally:
            await store.close()

    users = asyncio.run(write())
    return Catalog(name, size, url, users, True, time.perf_counter() - started)


def movielens(
    work: Path,
    data_dir: Path,
    model_dir: Path,
    *,
    redis_url: str | None = None,
    say: Say = print,
) -> Catalog:
    """The bundled MovieLens, imported, with the movie tower's vectors in the cache."""
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens

    data = read_movielens(data_dir)
    users = tuple(sorted(data.all_events(), key=lambda u: (len(u), u))[:USERS])
    size = len(data.movies)
    url = _store_url(work, "movielens", redis_url)
    say(f"MovieLens: importing {size:,} movies and embedding them with the movie tower")
    started = time.perf_counter()

    async def write() -> None:
        from service.index.vectors import vectors_for
        from service.towers import load_towers

        store = await _fresh_store(url)
        try:
            await import_movielens(store, data)
            towers = load_towers(model_dir, "latest")
            async for batch in store.iter_movies(BATCH):
                await vectors_for(store, towers, batch)
        finally:
            await store.close()

    asyncio.run(write())
    return Catalog("MovieLens", size, url, users, False, time.perf_counter() - started)

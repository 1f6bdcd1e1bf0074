"""The catalogs measured: synthetic ones of any size, and the bundled MovieLens.

Movies go in through the store interface (`apply_changes`: real versions, a real change log).
Their vectors go straight into the store's embedding cache for the model version: clustered
64-d unit vectors for synthetic movies, the movie tower's output for MovieLens. So "state load"
everywhere means reading vectors from the store, as any restart of the container does; nobody
runs the movie tower over a million synthetic titles (their vectors are not the tower's).

Every run writes its catalogs anew (a million movies take well under a minute), so a catalog
always matches the store code it is read with: on SQLite a file in the work directory, on Redis
(one URL) the whole store, emptied first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.store import Event, Movie, Store, Upsert, open_store

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
WORDS = (
    "Silent", "River", "Night", "Last", "Golden", "City", "Storm", "Winter", "Secret", "Garden",
    "Broken", "Empire", "Distant", "Shadow", "Summer", "Machine", "Lost", "Harbor", "Red",
    "Mountain", "Glass", "Kingdom", "Quiet", "Fire", "Paper", "Moon", "Wild", "Station", "Iron",
    "Letter",
)  # fmt: skip
BATCH = 5000
USERS = 12
HISTORY = 30
SPREAD = 0.6  # noise around a cluster centre, relative to the unit centre

Say = Callable[[str], None]


@dataclass(frozen=True)
class Catalog:
    name: str
    size: int
    store_url: str
    users: tuple[str, ...]
    synthetic: bool
    prepare_seconds: float


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


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


async def _write_synthetic(
    store: Store, size: int, model_version: str, dim: int, seed: int, say: Say
) -> tuple[str, ...]:
    rng = np.random.default_rng(seed)
    clusters = max(8, size // 500)
    centres = unit(rng.normal(size=(clusters, dim)))
    cluster_genres = [
        tuple(rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False))
        for _ in range(clusters)
    ]
    for start in range(0, size, BATCH):
        rows = np.arange(start, min(size, start + BATCH))
        of = rows % clusters
        noise = unit(rng.normal(size=(len(rows), dim)))
        vectors = unit(centres[of] + SPREAD * noise)
        words = rng.integers(0, len(WORDS), size=(len(rows), 3))
        years = rng.integers(1930, 2026, size=len(rows))
        movies = [
            Movie(
                id=f"syn-{row}",
                title=f"The {WORDS[w[0]]} {WORDS[w[1]]} of the {WORDS[w[2]]}",
                genres=cluster_genres[c],
                year=int(year),
            )
            for row, c, w, year in zip(rows.tolist(), of.tolist(), words, years, strict=True)
        ]
        result = await store.apply_changes([Upsert(m) for m in movies])
        await store.put_embeddings(
            model_version,
            {m.id: (result.versions[m.id], vectors[i]) for i, m in enumerate(movies)},
        )
        if (start // BATCH) % 20 == 19 or start + BATCH >= size:
            say(f"  {start + len(rows):,}/{size:,} movies written")
    users = []
    now = time.time()
    for u in range(USERS):
        cluster = (u * 7) % clusters
        members = np.arange(cluster, size, clusters)
        picked = rng.choice(members, size=min(HISTORY, len(members)), replace=False)
        events = [
            Event(f"syn-{row}", "rate", now - 3600.0 * i, float(rng.choice([3.5, 4.0, 4.5, 5.0])))
            if i % 2
            else Event(f"syn-{row}", "watch", now - 3600.0 * i)
            for i, row in enumerate(picked.tolist())
        ]
        user = f"user-{u}"
        await store.add_events(user, events)
        users.append(user)
    return tuple(users)


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
            return await _write_synthetic(store, size, model_version, dim, seed, say)
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
    from service.importer import import_movielens
    from service.movielens import read_movielens

    data = read_movielens(data_dir)
    users = tuple(sorted(data.all_events(), key=lambda u: (len(u), u))[:USERS])
    size = len(data.movies)
    url = _store_url(work, "movielens", redis_url)
    say(f"MovieLens: importing {size:,} movies and embedding them with the movie tower")
    started = time.perf_counter()

    async def write() -> None:
        from service.refresher import vectors_for
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

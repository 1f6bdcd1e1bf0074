"""Synthetic catalogs of any size, for the benchmarks and `movie-recs lambda-fit`.

Movies go in through the store interface (`apply_changes`: real versions, a real change log);
their vectors go straight into the store's embedding cache for the model version, as clustered
unit vectors (so a server loads them instead of running the movie tower over a million made-up
titles, whose tower vectors would mean nothing); users get histories inside one cluster, like
real tastes, so a personalized answer is recognisable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
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
SPREAD = 0.6  # noise around a cluster centre, relative to the unit centre
GENERATOR = 2  # bump when the catalog written changes, so cached benchmark stores are rebuilt

Say = Callable[[str], None]


def movie_id(row: int) -> str:
    return f"s{row}"


def user_id(number: int) -> str:
    return f"u{number}"


def unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)


def clusters_for(size: int) -> int:
    return max(8, size // 500)


def vector_batches(size: int, dim: int = 64, seed: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """(rows, cluster of each row, unit vectors) in batches: row r belongs to cluster r % C."""
    rng = np.random.default_rng(seed)
    clusters = clusters_for(size)
    centres = unit(rng.normal(size=(clusters, dim)))
    for start in range(0, size, BATCH):
        rows = np.arange(start, min(size, start + BATCH))
        of = rows % clusters
        yield rows, of, unit(centres[of] + SPREAD * unit(rng.normal(size=(len(rows), dim))))


def clustered_vectors(size: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """All vectors of a synthetic catalog at once (in-process index benchmarks)."""
    return np.concatenate([v for _, _, v in vector_batches(size, dim, seed)])


async def write_synthetic(
    store: Store,
    size: int,
    model_version: str,
    *,
    users: int = 1000,
    history: int = 30,
    dim: int = 64,
    seed: int = 0,
    say: Say | None = None,
) -> tuple[str, ...]:
    """Write `size` movies with cached vectors and `users` users; returns the user ids."""
    rng = np.random.default_rng(seed + 1)
    clusters = clusters_for(size)
    cluster_genres = [
        tuple(str(g) for g in rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False))
        for _ in range(clusters)
    ]
    for rows, of, vectors in vector_batches(size, dim, seed):
        words = rng.integers(0, len(WORDS), size=(len(rows), 3))
        years = rng.integers(1930, 2026, size=len(rows))
        movies = [
            Movie(
                id=movie_id(row),
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
        done = int(rows[-1]) + 1
        if say is not None and (done % (20 * BATCH) == 0 or done == size):
            say(f"  {done:,}/{size:,} movies written")
    now = time.time()
    ids = []
    for u in range(users):
        members = np.arange(u % clusters, size, clusters)
        picked = rng.choice(members, size=min(history, len(members)), replace=False)
        events = [
            Event(movie_id(row), "rate", now - 3600.0 * i, float(rng.choice([3.5, 4.0, 4.5, 5.0])))
            if i % 2
            else Event(movie_id(row), "watch", now - 3600.0 * i)
            for i, row in enumerate(picked.tolist())
        ]
        await store.add_events(user_id(u), events)
        ids.append(user_id(u))
    return tuple(ids)


def ensure_catalog(directory: Path, model_version: str, n: int) -> str:
    """A SQLite store under `directory` holding the synthetic catalog (built once, then reused)."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / f"synthetic-{n}.db"
    marker = directory / f"synthetic-{n}.json"
    url = f"sqlite:///{db.resolve()}"
    wanted = {"model": model_version, "n": n, "generator": GENERATOR}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return url
    db.unlink(missing_ok=True)

    async def build() -> None:
        store = await open_store(url)
        try:
            await write_synthetic(store, n, model_version)
        finally:
            await store.close()

    asyncio.run(build())
    marker.write_text(json.dumps(wanted))
    return url

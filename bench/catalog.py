"""Synthetic catalogs for the benchmarks: movies in a store, clustered unit vectors in the
store's embedding cache (so a server loads them instead of running the movie tower over 1M
titles), and users whose histories stay inside one cluster, like real tastes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from service.store import Event, Movie, Store, Upsert, open_store

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Documentary")
BATCH = 10_000


def clustered_vectors(n: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around n/250 random centres (at most 4,000), and each one's cluster."""
    rng = np.random.default_rng(seed)
    clusters = max(1, min(4000, n // 250))
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    assignment = rng.integers(0, clusters, n)
    vectors = centres[assignment] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), assignment


async def write_catalog(
    store: Store, model_version: str, n: int, users: int = 1000, history: int = 30, seed: int = 0
) -> None:
    vectors, cluster = clustered_vectors(n, seed=seed)
    ids = [f"s{i}" for i in range(n)]
    for start in range(0, n, BATCH):
        chunk = range(start, min(n, start + BATCH))
        await store.apply_changes(
            [
                Upsert(
                    Movie(
                        ids[i],
                        f"Synthetic {i}",
                        (GENRES[int(cluster[i]) % len(GENRES)],),
                        1950 + i % 75,
                    )
                )
                for i in chunk
            ]
        )
        await store.put_embeddings(model_version, {ids[i]: (1, vectors[i]) for i in chunk})
    rng = np.random.default_rng(seed + 1)
    members: dict[int, np.ndarray] = {}
    for u in range(users):
        c = int(cluster[rng.integers(0, n)])
        pool = members.setdefault(c, np.flatnonzero(cluster == c))
        chosen = rng.choice(pool, size=min(history, len(pool)), replace=False)
        await store.add_events(
            f"u{u}", [Event(ids[i], "watch", 1_700_000_000.0 + j) for j, i in enumerate(chosen)]
        )


def ensure_catalog(directory: Path, model_version: str, n: int) -> str:
    """A SQLite store under `directory` holding the synthetic catalog (built once, then reused)."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / f"synthetic-{n}.db"
    marker = directory / f"synthetic-{n}.json"
    url = f"sqlite:///{db.resolve()}"
    if marker.exists() and json.loads(marker.read_text()).get("model") == model_version:
        return url
    db.unlink(missing_ok=True)

    async def build() -> None:
        store = await open_store(url)
        try:
            await write_catalog(store, model_version, n)
        finally:
            await store.close()

    asyncio.run(build())
    marker.write_text(json.dumps({"model": model_version, "n": n}))
    return url

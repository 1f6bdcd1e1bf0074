"""The towers as the service runs them, against what training exported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from service.store import Movie, open_store
from service.towers import Towers


def stored_movies(seeded_sqlite: Path) -> list[Movie]:
    async def read() -> list[Movie]:
        store = await open_store(f"sqlite:///{seeded_sqlite}")
        try:
            return [m async for batch in store.iter_movies(5000) for m in batch]
        finally:
            await store.close()

    return asyncio.run(read())


def test_every_bundled_movie_gets_the_vector_training_exported(
    seeded_sqlite: Path, tiny_model_dir: Path, tiny_towers: Towers
) -> None:
    """No train/serve skew: the imported record, run through the served movie tower, gives the
    exact row of movie_vectors.npy, for every movie of the bundled catalog."""
    exported = np.load(tiny_model_dir / "movie_vectors.npy")
    row = {m: i for i, m in enumerate(json.loads((tiny_model_dir / "movie_ids.json").read_text()))}
    movies = stored_movies(seeded_sqlite)
    assert len(movies) == len(row) == 9742

    served = tiny_towers.embed_movies(movies)

    expected = exported[[row[m.id] for m in movies]]
    gaps = np.abs(served - expected).max(axis=1)
    skewed = [m.id for m, gap in zip(movies, gaps, strict=True) if gap > 1e-5]
    assert skewed == [], f"{len(skewed)} movies differ, up to {gaps.max():.2e}"

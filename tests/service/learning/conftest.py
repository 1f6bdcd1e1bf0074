"""Fixtures of the retraining tests: a small store's worth of MovieLens (200 users and their 200
most rated movies: a tiny model trains on it in seconds, and its ~190 test cases tell a trained
model from a random one), and a weak and a good model to compare candidates with."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embeddings.data import BUNDLED_DATA, Dataset
from service.store import open_store
from tests.service.learning.support import CONFIG, Seed

USERS, MOVIES = 200, 200


@pytest.fixture(scope="session")
def seed() -> Seed:
    from service.ingest.movielens import read_movielens

    data = read_movielens(BUNDLED_DATA)
    every = data.all_events()
    users = sorted(every, key=int)[:USERS]
    counts = collections.Counter(e.movie_id for user in users for e in every[user])
    kept = {movie for movie, _ in counts.most_common(MOVIES)}
    return Seed(
        [m for m in data.movies if m.id in kept],
        {user: [e for e in every[user] if e.movie_id in kept] for user in users},
    )


def _train(directory: Path, seed: Seed, spoil: Callable[[Dataset], Dataset]) -> Path:
    """A model trained on the seed as a store gives it, through `spoil`; its artifacts dir."""
    from embeddings.train import train
    from service.learning.dataset import read_dataset

    async def read() -> Dataset:
        store = await open_store(f"sqlite:///{directory / 'store.db'}")
        try:
            await seed.into(store)
            return (await read_dataset(store)).dataset
        finally:
            await store.close()

    dataset = spoil(asyncio.run(read()))
    train(dataset, directory / "artifacts", config=CONFIG, verbose=0, log=lambda _: None)
    return directory / "artifacts"


@pytest.fixture(scope="session")
def weak_artifacts(tmp_path_factory: pytest.TempPathFactory, seed: Seed) -> Path:
    """A model trained by the same code on noise: every event's movie drawn at random."""

    def shuffle(dataset: Dataset) -> Dataset:
        ratings = dataset.ratings
        noise = np.random.default_rng(0).integers(0, len(ratings.movies), len(ratings))
        return Dataset(
            dataset.movies, dataclasses.replace(ratings, movie_index=noise.astype(np.int32))
        )

    return _train(tmp_path_factory.mktemp("weak"), seed, shuffle)


@pytest.fixture(scope="session")
def good_artifacts(tmp_path_factory: pytest.TempPathFactory, seed: Seed) -> Path:
    """A model trained on the seed itself (seed 0)."""
    return _train(tmp_path_factory.mktemp("good"), seed, lambda dataset: dataset)

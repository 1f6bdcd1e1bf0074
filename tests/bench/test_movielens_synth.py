"""The synthetic MovieLens generator: the format the reader expects, seeded, shaped like logs."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from bench.movielens_synth import generate
from embeddings.data import load_dataset
from embeddings.split import leave_last_out


def test_same_seed_same_files_and_a_readable_realistic_dataset(tmp_path: Path) -> None:
    counts = generate(tmp_path / "a", ratings=20_000, seed=3)
    generate(tmp_path / "b", ratings=20_000, seed=3)
    for name in ("ratings.csv", "movies.csv", "tags.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert 19_000 <= counts["ratings"] <= 20_000

    dataset = load_dataset(tmp_path / "a")
    assert len(dataset.ratings) == counts["ratings"]  # no bad rows, no duplicates
    assert not {k for k in dataset.report if "bad" in k or "duplicate" in k}
    assert sum(1 for m in dataset.movies if m.tags) > len(dataset.movies) // 5
    assert sum(1 for m in dataset.movies if m.year) > 0.95 * len(dataset.movies)

    per_user = np.bincount(dataset.ratings.user_index)
    assert per_user.min() >= 20 and per_user.max() > 5 * np.median(per_user)  # heavy users
    per_movie = np.sort(np.bincount(dataset.ratings.movie_index))[::-1]
    top = per_movie[: len(per_movie) // 100].sum() / per_movie.sum()
    assert top > 0.05  # the top 1% of movies: over 5x their share under a uniform choice

    # Taste: consecutive movies share genres far more often than two random movies do.
    split = leave_last_out(dataset, min_rating=0, cold_fraction=0, seed=0)
    genres = [frozenset(m.genres) for m in dataset.movies]
    pairs = [(a, b) for s in split.sequences for a, b in itertools.pairwise(s)]
    together = np.mean([genres[a] == genres[b] for a, b in pairs])
    rng = np.random.default_rng(0)
    shuffled = rng.choice(np.concatenate(split.sequences), size=(len(pairs), 2))
    apart = np.mean([genres[a] == genres[b] for a, b in shuffled])
    assert together > 3 * apart
    assert Counter(dataset.ratings.ratings.tolist()).keys() <= {x / 2 for x in range(1, 11)}

"""A catalog record -> the movie tower's inputs: the one adapter training, export and serving use.

Training encodes its catalog, export writes `movie_vectors.npy` and a replica embeds the movies
of its store through `tower_inputs` and `embed_movies`, so the fields (the "|"-joined genres and
tags, year 0 for unknown) and the batching are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

MOVIE_BATCH = 2048


class MovieRecord(Protocol):
    """What the tower reads of a movie: `embeddings.data.Movie` and the stored movie both fit."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def genres(self) -> tuple[str, ...]: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def year(self) -> int | None: ...


def tower_inputs(movies: Sequence[MovieRecord]) -> dict[str, Any]:
    """The keyword arguments of the movie tower's signature (and of `MovieEncoder`)."""
    import tensorflow as tf

    return {
        "movie_id": tf.constant([m.id for m in movies], tf.string),
        "title": tf.constant([m.title for m in movies], tf.string),
        "genres": tf.constant(["|".join(m.genres) for m in movies], tf.string),
        "tags": tf.constant(["|".join(m.tags) for m in movies], tf.string),
        "year": tf.constant([m.year or 0 for m in movies], tf.int32),
    }


def embed_movies(signature: Any, movies: Sequence[MovieRecord], dim: int) -> np.ndarray:
    """Run a movie-tower signature over records in batches: float32 [len(movies), dim]."""
    parts = [np.zeros((0, dim), np.float32)]
    for start in range(0, len(movies), MOVIE_BATCH):
        out = signature(**tower_inputs(movies[start : start + MOVIE_BATCH]))
        parts.append(np.asarray(out["embedding"].numpy(), np.float32))
    return np.concatenate(parts)

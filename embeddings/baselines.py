"""The two baselines the model must beat, fitted on the same training interactions as the model.

- most popular: score = number of training interactions of the movie;
- item co-occurrence: score(j) = sum over the user's history h of cosine(h, j), the cosine of the
  two movies' binary user vectors (who watched them) in the training interactions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def training_matrix(train_sequences: Sequence[np.ndarray], num_movies: int) -> np.ndarray:
    """Binary users x movies matrix of the training interactions (float32)."""
    matrix = np.zeros((len(train_sequences), num_movies), dtype=np.float32)
    for row, movies in enumerate(train_sequences):
        matrix[row, movies] = 1.0
    return matrix


def popularity_scores(train: np.ndarray, num_cases: int) -> np.ndarray:
    """The same popularity row for every case."""
    return np.broadcast_to(train.sum(axis=0), (num_cases, train.shape[1]))


def cooccurrence_scores(
    train: np.ndarray, histories: Sequence[np.ndarray], chunk: int = 1024
) -> np.ndarray:
    """Sum of item-item cosines, computed as (H (X D^-1/2)^T)(X D^-1/2) without the items x items
    matrix, which would not fit in memory for a larger catalog (H: histories, X: training)."""
    counts = train.sum(axis=0)
    inv_sqrt = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0).astype(np.float32)
    normalized = train * inv_sqrt
    scores = np.empty((len(histories), train.shape[1]), dtype=np.float32)
    for begin in range(0, len(histories), chunk):
        part = histories[begin : begin + chunk]
        history = np.zeros((len(part), train.shape[1]), dtype=np.float32)
        for row, movies in enumerate(part):
            history[row, movies] = 1.0
        scores[begin : begin + len(part)] = (history @ normalized.T) @ normalized
    return scores

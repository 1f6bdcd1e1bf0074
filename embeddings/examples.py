"""Training examples: every training interaction after a user's first, predicted from the ones
before it (newest first, at most L), the same shape of question the test asks.

An event of weight 0 (a dislike: `embeddings.weights.disliked_ratings`) is no input: it is left
out of every history, as the service leaves it out of a user's. It stays a target unless
`dislike_targets` is off.

Examples are never materialised as an `[examples, L]` array (25M x 50 x 8 B is 10 GB): they are
positions in the users' concatenated sequences, and `batch` cuts the histories of one batch of
positions on the fly. Memory is ~13 bytes per training interaction, whatever L is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

PAD = -1

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # history [B, L], weights [B, L], targets [B]


@dataclass(frozen=True)
class Examples:
    movies: np.ndarray  # int32 [N] every user's training sequence, oldest first, concatenated
    weights: np.ndarray  # float32 [N]
    starts: np.ndarray  # int32 [N] where the user of each position begins
    positions: np.ndarray  # int32 [E] the positions that are examples (some input before them)
    length: int  # L
    inputs: np.ndarray  # int32 [I] the positions that are history inputs (weight > 0), ascending

    def __len__(self) -> int:
        return len(self.positions)

    def targets(self) -> np.ndarray:
        return np.asarray(self.movies[self.positions])

    def batch(self, positions: np.ndarray) -> Batch:
        """(history, weights, targets) of the examples at `positions`, histories newest first:
        the last L inputs of the same user before each position."""
        end = np.searchsorted(self.inputs, positions)  # inputs before the position
        first = np.searchsorted(self.inputs, self.starts[positions])  # the user's first input
        before = end[:, None] - 1 - np.arange(self.length, dtype=np.int64)[None, :]
        real = before >= first[:, None]
        rows = self.inputs[np.where(real, before, 0)] if len(self.inputs) else np.zeros_like(before)
        history = np.where(real, self.movies[rows], PAD).astype(np.int32)
        weights = np.where(real, self.weights[rows], 0.0).astype(np.float32)
        return history, weights, self.movies[positions]

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch in a random order."""
        order = self.positions[rng.permutation(len(self.positions))]
        for begin in range(0, len(order), batch_size):
            yield self.batch(order[begin : begin + batch_size])


def newest_first(
    movies: np.ndarray, weights: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The last `length` movies of an oldest-first history, newest first, padded to `length`."""
    recent, recent_weights = movies[::-1][:length], weights[::-1][:length]
    history = np.full(length, PAD, dtype=np.int32)
    padded_weights = np.zeros(length, dtype=np.float32)
    history[: len(recent)] = recent
    padded_weights[: len(recent)] = recent_weights
    return history, padded_weights


def build_examples(
    sequences: Sequence[tuple[np.ndarray, np.ndarray]], length: int, dislike_targets: bool = True
) -> Examples:
    """Every position with an input of its user before it is an example; with `dislike_targets`
    off, not the positions of weight 0 (a dislike is then no target either)."""
    sizes = np.array([len(m) for m, _ in sequences], dtype=np.int64)
    if sizes.sum() >= np.iinfo(np.int32).max:
        raise ValueError("more than 2^31 training interactions")
    movies = np.concatenate(
        [np.asarray(m, np.int32) for m, _ in sequences] + [np.zeros(0, np.int32)]
    )
    weights = np.concatenate(
        [np.asarray(w, np.float32) for _, w in sequences] + [np.zeros(0, np.float32)]
    )
    first = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int32)
    starts = np.repeat(first, sizes)
    inputs = np.flatnonzero(weights > 0).astype(np.int32)
    index = np.arange(len(movies))
    has_input = np.searchsorted(inputs, index) > np.searchsorted(inputs, starts)
    if not dislike_targets:
        has_input &= weights > 0
    positions = np.flatnonzero(has_input).astype(np.int32)
    return Examples(movies, weights, starts, positions, length, inputs)

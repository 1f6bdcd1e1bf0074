"""Training examples: every training interaction after a user's first, predicted from the ones
before it (newest first, at most L), the same shape of question the test asks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAD = -1


@dataclass(frozen=True)
class Examples:
    history: np.ndarray  # int32 [E, L] catalog indices, newest first, PAD after the oldest
    weights: np.ndarray  # float32 [E, L], 0 for padding
    targets: np.ndarray  # int32 [E]

    def __len__(self) -> int:
        return len(self.targets)


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


def build_examples(sequences: Sequence[tuple[np.ndarray, np.ndarray]], length: int) -> Examples:
    histories, weights, targets = [], [], []
    for movies, movie_weights in sequences:
        if len(movies) < 2:
            continue
        padded = np.r_[np.full(length, PAD), movies].astype(np.int32)
        padded_weights = np.r_[np.zeros(length), movie_weights].astype(np.float32)
        # Window t holds the `length` interactions before movie t (t >= 1), oldest first.
        windows = np.lib.stride_tricks.sliding_window_view(padded, length)[1 : len(movies)]
        window_weights = np.lib.stride_tricks.sliding_window_view(padded_weights, length)
        histories.append(windows[:, ::-1])
        weights.append(window_weights[1 : len(movies), ::-1])
        targets.append(movies[1:])
    return Examples(
        history=np.ascontiguousarray(np.concatenate(histories), dtype=np.int32),
        weights=np.ascontiguousarray(np.concatenate(weights), dtype=np.float32),
        targets=np.concatenate(targets).astype(np.int32),
    )

"""Leave-last-out split with a set of cold movies, the one split every method is measured on.

Per user, sorted by time (ties keep file order): the last interaction is the test case, the one
before it the validation case, the rest is training. About `cold_fraction` of the rated movies
are also removed from training entirely, so the content-only path of the movie tower can be
measured on movies the model never saw, like movies added to the catalog after training.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from embeddings.data import DataError, Dataset
from embeddings.weights import event_weight

Stage = Literal["validation", "test"]
MIN_EVALUATED_INTERACTIONS = 3  # one to learn from, one to validate, one to test


@dataclass(frozen=True)
class EvalCases:
    """One case per user: everything before the target is history (and is excluded as seen)."""

    users: list[str]
    histories: list[np.ndarray]  # catalog indices, oldest first, cold movies included
    weights: list[np.ndarray]
    targets: np.ndarray  # catalog index of the held-out movie

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    movie_ids: list[str]  # catalog order (movies.csv)
    users: list[str]
    sequences: list[np.ndarray]  # catalog indices per user, oldest first
    weights: list[np.ndarray]
    cold: np.ndarray  # bool [num_movies]: never seen in training
    report: Counter[str] = field(default_factory=Counter)

    def train_sequences(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user the training part without cold movies: (movies, weights), oldest first."""
        result = []
        for movies, weights in zip(self.sequences, self.weights, strict=True):
            if len(movies) >= MIN_EVALUATED_INTERACTIONS:
                movies, weights = movies[:-2], weights[:-2]
            keep = ~self.cold[movies]
            result.append((movies[keep], weights[keep]))
        return result

    def cases(self, stage: Stage) -> EvalCases:
        """Validation: history = training part, target = second to last. Test: target = last."""
        end = -2 if stage == "validation" else -1
        users, histories, weights, targets = [], [], [], []
        for user, movies, w in zip(self.users, self.sequences, self.weights, strict=True):
            if len(movies) < MIN_EVALUATED_INTERACTIONS:
                continue
            users.append(user)
            histories.append(movies[:end])
            weights.append(w[:end])
            targets.append(movies[end])
        return EvalCases(users, histories, weights, np.array(targets, dtype=np.int64))

    def cold_cases(self) -> EvalCases:
        """Every interaction with a cold movie (not a user's first), from the ones before it.

        A steadier measure of the content-only path than the few test cases that happen to end
        on a cold movie; still no cold movie was trained on.
        """
        users, histories, weights, targets = [], [], [], []
        for user, movies, w in zip(self.users, self.sequences, self.weights, strict=True):
            for position in np.flatnonzero(self.cold[movies]):
                if position == 0:
                    continue
                users.append(user)
                histories.append(movies[:position])
                weights.append(w[:position])
                targets.append(movies[position])
        return EvalCases(users, histories, weights, np.array(targets, dtype=np.int64))


def leave_last_out(
    dataset: Dataset, *, min_rating: float, cold_fraction: float, seed: int
) -> Split:
    """Build the split. Ratings below `min_rating` are dropped (0 keeps every rating)."""
    ratings = dataset.ratings
    report: Counter[str] = Counter()
    movie_ids = [m.id for m in dataset.movies]
    index = {movie_id: i for i, movie_id in enumerate(movie_ids)}

    keep = ratings.ratings >= min_rating
    report["ratings_below_threshold"] = int((~keep).sum())
    if not keep.any():
        raise DataError(f"no rating is >= {min_rating}: nothing to train on")
    user_ids = ratings.user_ids[keep]
    movies = np.array([index[m] for m in ratings.movie_ids[keep]], dtype=np.int64)
    stars = ratings.ratings[keep]
    # Stable sort by (user, time): equal timestamps keep file order.
    order = np.lexsort((ratings.timestamps[keep], user_ids.astype(str)))
    user_ids, movies, stars = user_ids[order], movies[order], stars[order]
    starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    bounds = np.r_[starts, len(user_ids)]

    users, sequences, weights = [], [], []
    for begin, end in itertools.pairwise(bounds):
        users.append(str(user_ids[begin]))
        sequences.append(movies[begin:end])
        weights.append(np.array([event_weight("rate", r) for r in stars[begin:end]], np.float32))
        n = end - begin
        if n == 1:
            report["users_with_one_interaction"] += 1
        elif n < MIN_EVALUATED_INTERACTIONS:
            report["users_too_short_to_evaluate"] += 1
    report["users"] = len(users)
    if all(len(s) < MIN_EVALUATED_INTERACTIONS for s in sequences):
        raise DataError(
            f"no user has {MIN_EVALUATED_INTERACTIONS} or more interactions: nothing to evaluate"
        )

    cold = _choose_cold(np.unique(movies), len(movie_ids), cold_fraction, seed)
    report["cold_movies"] = int(cold.sum())
    split = Split(movie_ids, users, sequences, weights, cold, report)
    if not any(len(m) > 1 for m, _ in split.train_sequences()):
        raise DataError("no user has two training interactions: nothing to learn from")
    return split


def _choose_cold(rated: np.ndarray, num_movies: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded sample of the *rated* movies: an unrated cold movie would measure nothing."""
    cold = np.zeros(num_movies, dtype=bool)
    count = round(fraction * len(rated))
    if count:
        cold[np.random.default_rng(seed).choice(rated, size=count, replace=False)] = True
    return cold

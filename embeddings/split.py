"""Leave-last-out split with a set of cold movies, the one split every method is measured on.

Per user, sorted by time (ties keep file order): the last `events` interactions are the test
cases (1 by default: the last one), the `events` before them the validation cases, the rest is
training; each case is predicted from everything before it. A disliked event (a rating <= 2 of
5) has weight 0: it is seen (never ranked) but no input of the user tower, as at serving.
About `cold_fraction` of the rated movies are also removed from training entirely, so the
content-only path of the movie tower can be measured on movies the model never saw, like movies
added to the catalog after training.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from embeddings.data import DataError, Dataset
from embeddings.weights import DISLIKE_MAX_RATING, disliked_ratings, rating_weights

Stage = Literal["validation", "test"]
MIN_EVALUATED_INTERACTIONS = 3  # one to learn from, one to validate, one to test


@dataclass(frozen=True)
class EvalCases:
    """Cases (one or a few per user): everything before the target is history (and is excluded
    as seen); the history's events of weight 0 (dislikes) are no input of the user tower."""

    users: list[str]
    histories: list[np.ndarray]  # catalog indices, oldest first, cold movies included
    weights: list[np.ndarray]
    targets: np.ndarray  # catalog index of the held-out movie
    disliked: np.ndarray | None = None  # bool per case: the target is a dislike (None: none is)

    def disliked_targets(self) -> np.ndarray:
        return np.zeros(len(self), bool) if self.disliked is None else self.disliked

    def __len__(self) -> int:
        return len(self.users)

    def chunks(self, size: int) -> Iterator[EvalCases]:
        for begin in range(0, len(self), size):
            rows = slice(begin, begin + size)
            yield EvalCases(
                self.users[rows],
                self.histories[rows],
                self.weights[rows],
                self.targets[rows],
                self.disliked_targets()[rows],
            )

    def sample(self, size: int, seed: int) -> EvalCases:
        """A seeded sample of `size` cases (in their order), or all of them if there are fewer."""
        if len(self) <= size:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=size, replace=False))
        return EvalCases(
            [self.users[i] for i in keep],
            [self.histories[i] for i in keep],
            [self.weights[i] for i in keep],
            self.targets[keep],
            self.disliked_targets()[keep],
        )


@dataclass(frozen=True)
class Split:
    movie_ids: list[str]  # catalog order (movies.csv)
    users: list[str]
    sequences: list[np.ndarray]  # catalog indices per user, oldest first
    weights: list[np.ndarray]  # 0: a disliked event (no input)
    cold: np.ndarray  # bool [num_movies]: never seen in training
    report: Counter[str] = field(default_factory=Counter)
    events: int = 1  # held-out events per user, per stage

    def evaluated(self, movies: np.ndarray) -> bool:
        return len(movies) >= 2 * self.events + 1

    def train_sequences(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user the training part without cold movies: (movies, weights), oldest first."""
        result = []
        held_out = 2 * self.events
        for movies, weights in zip(self.sequences, self.weights, strict=True):
            if self.evaluated(movies):
                movies, weights = movies[:-held_out], weights[:-held_out]
            keep = ~self.cold[movies]
            result.append((movies[keep], weights[keep]))
        return result

    def cases(self, stage: Stage) -> EvalCases:
        """Validation: the `events` before the last `events`; test: the last `events`. Each from
        everything before it (for a later test case, the earlier held-out events too)."""
        users, histories, weights, targets, disliked = [], [], [], [], []
        for user, movies, w in zip(self.users, self.sequences, self.weights, strict=True):
            if not self.evaluated(movies):
                continue
            first = len(movies) - (2 if stage == "validation" else 1) * self.events
            for end in range(first, first + self.events):
                users.append(user)
                histories.append(movies[:end])
                weights.append(w[:end])
                targets.append(movies[end])
                disliked.append(w[end] == 0)
        return EvalCases(
            users, histories, weights, np.array(targets, dtype=np.int64), np.array(disliked, bool)
        )

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
    dataset: Dataset,
    *,
    min_rating: float,
    cold_fraction: float,
    seed: int,
    events: int = 1,
    dislike_max_rating: float | None = DISLIKE_MAX_RATING,
) -> Split:
    """Build the split. Ratings below `min_rating` are dropped (0 keeps every rating); ratings
    <= `dislike_max_rating` weigh 0 (None: none does, every rating is an input)."""
    ratings = dataset.ratings
    report: Counter[str] = Counter()
    movie_ids = [m.id for m in dataset.movies]

    keep = ratings.ratings >= min_rating
    report["ratings_below_threshold"] = int((~keep).sum())
    if not keep.any():
        raise DataError(f"no rating is >= {min_rating}: nothing to train on")
    # Users in the order of their ids as strings; stable sort by (user, time): equal timestamps
    # keep file order.
    names = np.array(ratings.users, dtype=str)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    user_rank = rank[ratings.user_index[keep]]
    order = np.lexsort((ratings.timestamps[keep], user_rank))
    user_rank = user_rank[order]
    movies = ratings.movie_index[keep][order].astype(np.int64)
    stars = ratings.ratings[keep][order]
    weights_all = rating_weights(stars)
    if dislike_max_rating is not None:
        disliked = disliked_ratings(stars, dislike_max_rating)
        weights_all[disliked] = 0.0
        report["disliked_ratings"] = int(disliked.sum())
    starts = np.flatnonzero(np.r_[True, user_rank[1:] != user_rank[:-1]])
    bounds = np.r_[starts, len(user_rank)]
    by_rank = np.argsort(rank)

    users, sequences, weights = [], [], []
    for begin, end in itertools.pairwise(bounds):
        users.append(str(ratings.users[by_rank[user_rank[begin]]]))
        sequences.append(movies[begin:end])
        weights.append(weights_all[begin:end])
        n = end - begin
        if n == 1:
            report["users_with_one_interaction"] += 1
        elif n < 2 * events + 1:
            report["users_too_short_to_evaluate"] += 1
    report["users"] = len(users)
    if all(len(s) < 2 * events + 1 for s in sequences):
        raise DataError(f"no user has {2 * events + 1} or more interactions: nothing to evaluate")

    cold = _choose_cold(np.unique(movies), len(movie_ids), cold_fraction, seed)
    report["cold_movies"] = int(cold.sum())
    split = Split(movie_ids, users, sequences, weights, cold, report, events)
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

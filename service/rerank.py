"""Re-ranking a candidate pool: away from disliked movies, and towards a varied list (MMR).

Both work on a pool wider than the list (`pool_size`), with the movie vectors (unit length, so
an inner product is a cosine). Neither runs for a plain request: the recommender skips this
module when there is no dislike, no diversity and no genre cap, so that ranking is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POOL_FACTOR = 5  # candidates per item asked for
MIN_POOL = 50
CAPPED_POOL = 4  # times more under a genre cap: a top 50 is often mostly one genre
# A candidate's score falls by DISLIKE_PUSH x (its cosine to the nearest disliked movie -
# DISLIKE_NEAR) when positive. On the bundled model a movie's 50th nearest neighbour is at ~0.53
# and a random pair at ~0.1: only the dislike's neighbourhood moves, its closest (~0.75) by
# ~0.25, more than a top-10's spread of scores. Chosen on validation HR@10 (docs/decisions/0031):
# a push on every positive cosine cost 4-25 % of it (a user's next movie is often near one they
# rated low), this one is within noise of no push.
DISLIKE_PUSH = 1.0
DISLIKE_NEAR = 0.5


def pool_size(k: int, capped: bool = False) -> int:
    return max(MIN_POOL, POOL_FACTOR * k) * (CAPPED_POOL if capped else 1)


def push_away(scores: np.ndarray, vectors: np.ndarray, disliked: np.ndarray) -> np.ndarray:
    """`scores` lowered for the candidates near a disliked movie (the max cosine over the
    dislikes, not the mean, so one dislike among many still repels its own neighbours)."""
    if not len(disliked):
        return scores
    nearest = (vectors @ disliked.T).max(axis=1)
    return np.asarray(scores - DISLIKE_PUSH * np.maximum(nearest - DISLIKE_NEAR, 0.0), np.float64)


def diversify(
    scores: np.ndarray,
    vectors: np.ndarray,
    k: int,
    diversity: float,
    genres: Sequence[Sequence[str]] | None = None,
    max_per_genre: int | None = None,
) -> list[int]:
    """Greedy MMR: each next pick maximizes (1 - d) x its score - d x its mean cosine to the
    picks so far. The score is an inner product of unit vectors, so both terms are cosines
    (for the popular list, a popularity in 0..1); the mean rather than MMR's classic max is
    what intra-list diversity measures, and it lost less HR@10 on validation for the same
    gain (docs/decisions/0032). d = 0 keeps the score order. `max_per_genre`: a pick may not
    bring any genre above that many in the list while a candidate is left that keeps it."""
    n = len(scores)
    k = min(k, n)
    if diversity <= 0 and max_per_genre is None:  # the score order: one sort, not k passes
        return np.argsort(-scores, kind="stable")[:k].tolist()  # type: ignore[no-any-return]
    redundancy = np.zeros(n)  # each candidate's summed cosine to the picks so far
    taken = np.zeros(n, bool)
    counts: dict[str, int] = {}
    picks: list[int] = []
    for _ in range(k):
        value = (1.0 - diversity) * scores - diversity * redundancy / max(len(picks), 1)
        value[taken] = -np.inf
        pick = -1
        if max_per_genre is not None and genres is not None:
            for candidate in np.argsort(-value, kind="stable")[: n - len(picks)].tolist():
                if all(counts.get(g, 0) < max_per_genre for g in genres[candidate]):
                    pick = candidate
                    break
        if pick < 0:
            pick = int(np.argmax(value))
        if genres is not None:
            for genre in genres[pick]:
                counts[genre] = counts.get(genre, 0) + 1
        picks.append(pick)
        taken[pick] = True
        if diversity > 0:
            redundancy += vectors @ vectors[pick]
    return picks

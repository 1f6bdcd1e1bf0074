"""HR@k and NDCG@k of one held-out movie per user, by full ranking over the whole catalog.

No sampled negatives: every catalog movie the user has not seen is a candidate. Ties are scored
by their expectation under a random tie-break, so a baseline with many equal scores (popularity,
co-occurrence) is neither favoured nor punished against a model whose scores never tie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranking:
    """Per case: candidates scored strictly above the target, and tied with it."""

    above: np.ndarray  # int64
    tied: np.ndarray  # int64, the target itself not counted

    def hit_rate(self, k: int) -> float:
        return float(expected_hits(self.above, self.tied, k).mean()) if len(self.above) else 0.0

    def ndcg(self, k: int) -> float:
        return float(expected_ndcg(self.above, self.tied, k).mean()) if len(self.above) else 0.0

    def subset(self, mask: np.ndarray) -> Ranking:
        return Ranking(self.above[mask], self.tied[mask])

    @staticmethod
    def concatenate(parts: Sequence[Ranking]) -> Ranking:
        """The rankings of consecutive chunks of cases as one."""
        empty = np.zeros(0, np.int64)
        return Ranking(
            np.concatenate([empty, *(p.above for p in parts)]),
            np.concatenate([empty, *(p.tied for p in parts)]),
        )


def rank_targets(scores: np.ndarray, targets: np.ndarray, seen: Sequence[np.ndarray]) -> Ranking:
    """Rank each row's target among all columns except that row's seen movies."""
    scores = np.array(scores, dtype=np.float64)  # a copy: seen movies are overwritten
    rows = np.arange(len(targets))
    for row, movies in enumerate(seen):
        scores[row, movies] = -np.inf
    target_scores = scores[rows, targets]
    above = (scores > target_scores[:, None]).sum(axis=1)
    tied = (scores == target_scores[:, None]).sum(axis=1) - 1
    return Ranking(above.astype(np.int64), tied.astype(np.int64))


def expected_hits(above: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """P(target in top k): its position is uniform over above .. above + tied."""
    slots = np.clip(k - above, 0, None)
    hits: np.ndarray = np.minimum(slots, tied + 1) / (tied + 1)
    return hits


def expected_ndcg(above: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """E[1 / log2(position + 2)] over the top-k positions the target may take (0-based)."""
    gains = np.r_[1.0 / np.log2(np.arange(k) + 2.0), 0.0]
    cumulative = np.r_[0.0, np.cumsum(gains)]  # cumulative[p] = sum of gains of positions < p
    first = np.minimum(above, k)
    last = np.minimum(above + tied + 1, k)
    shared: np.ndarray = (cumulative[last] - cumulative[first]) / (tied + 1)
    return shared


def random_hit_rate(num_movies: int, seen_counts: np.ndarray, k: int) -> float:
    """Expected HR@k of a uniformly random ranking of the unseen movies."""
    candidates = np.maximum(num_movies - seen_counts, 1)
    return float(np.minimum(1.0, k / candidates).mean()) if len(seen_counts) else 0.0


def interval95(values: np.ndarray) -> float:
    """Half-width of the 95 % normal interval of the mean of per-case values (0 below 2)."""
    if len(values) < 2:
        return 0.0
    return float(1.96 * np.std(values, ddof=1) / np.sqrt(len(values)))

"""Metrics against rankings small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embeddings.baselines import (
    cooccurrence_scores,
    item_similarity,
    popularity_scores,
    recent_cap,
    training_matrix,
)
from embeddings.metrics import Ranking, random_hit_rate, rank_targets


def test_toy_ranking_checked_by_hand() -> None:
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5],  # target 2; movie 0 seen -> rank 1 (0-based)
            [0.1, 0.2, 0.3, 0.4, 0.5],  # target 0, nothing seen -> rank 4
            [0.5, 0.9, 0.1, 0.2, 0.3],  # target 1; movie 1 is the best -> rank 0
        ]
    )
    ranking = rank_targets(
        scores, np.array([2, 0, 1]), [np.array([0]), np.array([], int), np.array([3])]
    )
    assert ranking.above.tolist() == [1, 4, 0]
    assert ranking.tied.tolist() == [0, 0, 0]
    # k = 2: hits for ranks 1 and 0; NDCG = 1/log2(3) and 1/log2(2).
    assert ranking.hit_rate(2) == pytest.approx(2 / 3)
    assert ranking.ndcg(2) == pytest.approx((1 / math.log2(3) + 1.0) / 3)
    assert ranking.hit_rate(5) == pytest.approx(1.0)
    assert ranking.ndcg(5) == pytest.approx((1 / math.log2(3) + 1 / math.log2(6) + 1) / 3)


def test_ties_count_as_their_expectation() -> None:
    # Target tied with 3 others at the top, k = 2: positions 0..3 equally likely.
    ranking = Ranking(above=np.array([0]), tied=np.array([3]))
    assert ranking.hit_rate(2) == pytest.approx(2 / 4)
    assert ranking.ndcg(2) == pytest.approx((1.0 + 1 / math.log2(3)) / 4)
    # One movie above, tied with one other, k = 2: position 1 or 2.
    ranking = Ranking(above=np.array([1]), tied=np.array([1]))
    assert ranking.hit_rate(2) == pytest.approx(0.5)
    assert ranking.ndcg(2) == pytest.approx(0.5 / math.log2(3))


def test_seen_movies_are_not_candidates_even_when_tied() -> None:
    scores = np.array([[1.0, 1.0, 1.0, 0.0]])
    ranking = rank_targets(scores, np.array([2]), [np.array([0, 1])])
    assert (ranking.above.tolist(), ranking.tied.tolist()) == ([0], [0])


def test_random_hit_rate_excludes_seen() -> None:
    assert random_hit_rate(100, np.array([50, 90]), 10) == pytest.approx((10 / 50 + 1.0) / 2)


def test_popularity_and_cooccurrence_by_hand() -> None:
    # users x movies: u0 {0,1}, u1 {0,1,2}, u2 {2,3}
    train = training_matrix([np.array([0, 1]), np.array([0, 1, 2]), np.array([2, 3])], 5)
    assert popularity_scores(train, 1)[0].tolist() == [2, 2, 2, 1, 0]
    similarity = item_similarity(train)
    scores = cooccurrence_scores(similarity, [np.array([0])])[0]
    # cos(0, j) = co-watchers / sqrt(n0 * nj): j=1 -> 2/2, j=2 -> 1/2, j=3 -> 0, j=4 -> 0
    assert scores.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    two = cooccurrence_scores(similarity, [np.array([0, 3])])[0]
    assert two[2] == pytest.approx(0.5 + 1 / math.sqrt(2))
    # On a budget each movie keeps its most similar ones: movie 0 keeps 0 and 1 (cosine 1).
    pruned = cooccurrence_scores(item_similarity(train, budget=10), [np.array([0])])[0]
    assert pruned.tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0])


def test_chunked_rankings_concatenate_in_order() -> None:
    none = np.zeros(0, np.int64)  # nothing seen
    whole = rank_targets(np.array([[3.0, 2, 1], [1, 2, 3]]), np.array([2, 0]), [none, none])
    first = rank_targets(np.array([[3.0, 2, 1]]), np.array([2]), [none])
    second = rank_targets(np.array([[1.0, 2, 3]]), np.array([0]), [none])
    joined = Ranking.concatenate([first, second])
    assert joined.above.tolist() == whole.above.tolist() == [2, 2]


def test_cooccurrence_cost_cap_counts_each_users_recent_interactions() -> None:
    assert recent_cap(np.array([3, 4])) is None  # small data: every interaction counts
    assert recent_cap(np.array([10, 10]), budget=100) == 7  # 2 x 7^2 = 98 <= 100
    assert recent_cap(np.array([1, 10]), budget=50) == 7


def test_interval95_is_the_normal_interval_of_the_mean() -> None:
    from embeddings.metrics import interval95

    hits = np.array([1.0, 0.0] * 50)
    assert interval95(hits) == pytest.approx(1.96 * np.sqrt(0.25 * 100 / 99) / 10)
    assert interval95(np.ones(400)) == 0.0
    assert interval95(np.array([1.0])) == 0.0

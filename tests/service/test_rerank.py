"""The re-ranking rules on hand-made vectors: what moves, what does not."""

from __future__ import annotations

import numpy as np

from service.rerank import DISLIKE_NEAR, diversify, pool_size, push_away


def unit(*rows: tuple[float, float]) -> np.ndarray:
    matrix = np.array(rows, np.float32)
    return np.asarray(matrix / np.linalg.norm(matrix, axis=1, keepdims=True))


def test_only_a_dislikes_neighbourhood_is_pushed_down() -> None:
    vectors = unit((1, 0), (0.9, 0.1), (0, 1), (0.6, 0.8))
    disliked = unit((1, 0))
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    pushed = push_away(scores, vectors, disliked)
    cosines = vectors @ disliked[0]
    far = cosines <= DISLIKE_NEAR
    assert (pushed[far] == scores[far]).all()  # (0, 1) is untouched
    assert (pushed[~far] < scores[~far]).all()
    assert pushed.argmax() == 2  # the far movie now leads
    assert (push_away(scores, vectors, np.zeros((0, 2))) == scores).all()


def test_diversity_zero_keeps_the_score_order_and_one_avoids_repeats() -> None:
    # two near-copies on top, a different movie third
    vectors = unit((1, 0), (0.99, 0.05), (0, 1), (0.98, -0.1))
    scores = np.array([0.9, 0.89, 0.5, 0.85])
    assert diversify(scores, vectors, 3, 0.0) == [0, 1, 3]
    tied = np.array([0.5, 0.9, 0.5, 0.9])  # equal scores keep the search's order
    assert diversify(tied, vectors, 4, 0.0) == [1, 3, 0, 2]
    assert diversify(scores, vectors, 10, 0.0) == [0, 1, 3, 2]
    assert diversify(scores, vectors, 3, 0.5)[:2] == [0, 2]
    assert diversify(scores, vectors, 10, 0.5) == diversify(scores, vectors, 4, 0.5)


def test_a_genre_cap_holds_while_candidates_allow_it() -> None:
    vectors = unit((1, 0), (1, 0.1), (1, 0.2), (0, 1))
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    genres = [("Action",), ("Action",), ("Action", "Drama"), ("Drama",)]
    assert diversify(scores, vectors, 3, 0.0, genres, 2) == [0, 1, 3]
    assert diversify(scores, vectors, 4, 0.0, genres, 1) == [0, 3, 1, 2]  # then it must give
    assert pool_size(10, capped=True) > pool_size(10) >= 50

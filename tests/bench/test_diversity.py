"""The diversity benchmark's measures on hand-made inputs: each is what its name says."""

from __future__ import annotations

import numpy as np

from bench.diversity import Scores, genre_distance, mean_pairwise


def testgenre_distance_is_one_minus_jaccard() -> None:
    sets = [frozenset({"Action"}), frozenset({"Action", "Drama"}), frozenset({"Comedy"})]
    distance = genre_distance(sets)
    assert distance[0, 1] == 0.5 and distance[0, 2] == 1.0 and distance[1, 2] == 1.0
    assert mean_pairwise(distance) == (0.5 + 1.0 + 1.0) / 3
    assert genre_distance([frozenset(), frozenset()])[0, 1] == 0.0  # both without genres


def test_the_hr_change_is_paired_on_the_same_cases() -> None:
    def scores(hits: list[bool]) -> Scores:
        return Scores(float(np.mean(hits)), 0, 0, 0, 0, 0, np.array(hits))

    base = scores([True, True, False, False])
    assert scores([True, True, False, False]).hr_change(base) == "+0.0% [+0.0%, +0.0%]"
    assert scores([True, False, False, False]).hr_change(base).startswith("-50.0% [")

"""The gate's rule: the candidate's NDCG@10 at least the serving model's minus the tolerance."""

from __future__ import annotations

import numpy as np

from embeddings.data import Dataset, Movie, Ratings
from embeddings.split import leave_last_out
from service.learning.gate import Score, judge, untied


def test_a_candidate_within_the_tolerance_passes_and_one_below_it_does_not() -> None:
    serving = Score(ndcg=0.0700, hit_rate=0.14, cases=610)
    level = judge(Score(0.0650, 0.13, 610), serving, k=10, tolerance=0.005)
    below = judge(Score(0.0649, 0.13, 610), serving, k=10, tolerance=0.005)
    strict = judge(Score(0.0699, 0.15, 610), serving, k=10, tolerance=0.0)

    assert level.passed and not below.passed and not strict.passed
    assert below.reason == (
        "candidate NDCG@10 0.0649 < serving 0.0700 - tolerance 0.005 = 0.0650 "
        "on the same 610 test cases"
    )
    assert below.to_manifest() == {
        "metric": "ndcg@10",
        "candidate": {"ndcg@10": 0.0649, "hr@10": 0.13, "cases": 610},
        "serving": {"ndcg@10": 0.07, "hr@10": 0.14, "cases": 610},
        "tolerance": 0.005,
        "split": "the candidate's leave-last-out split of the data cut, test cases, full ranking",
        "passed": False,
        "reason": below.reason,
        "tied_cases_left_out": 0,
    }


def test_a_user_whose_last_second_holds_two_events_is_left_out_of_the_gate() -> None:
    """Which of two events in one second is "last" depends on the tie order, which a model
    trained elsewhere may not share: scoring it would let that model be tested on a target it
    trained on. A tie earlier in the history, or a tied event below min_rating, does not count."""
    movies = [Movie(str(i), f"Film {i}", 2000, ("Drama",), ()) for i in range(6)]
    rows = [  # user, movie, rating, time
        ("a", 0, 4.0, 10),
        ("a", 1, 4.0, 20),
        ("a", 2, 4.0, 30),
        ("a", 3, 4.0, 30),  # tied last
        ("b", 0, 4.0, 10),
        ("b", 1, 4.0, 10),
        ("b", 2, 4.0, 20),
        ("b", 3, 4.0, 30),  # tie earlier
        ("c", 0, 4.0, 10),
        ("c", 1, 4.0, 20),
        ("c", 2, 4.0, 30),
        ("c", 4, 1.0, 30),  # low rating
    ]
    users = ["a", "b", "c"]
    dataset = Dataset(
        movies,
        Ratings(
            users=users,
            movies=[m.id for m in movies],
            user_index=np.array([users.index(r[0]) for r in rows], np.int32),
            movie_index=np.array([r[1] for r in rows], np.int32),
            ratings=np.array([r[2] for r in rows], np.float32),
            timestamps=np.array([r[3] for r in rows], np.int64),
        ),
    )
    cases = leave_last_out(dataset, min_rating=3.0, cold_fraction=0.0, seed=0).cases("test")

    kept, left_out = untied(cases, dataset, min_rating=3.0)

    assert (kept.users, left_out) == (["b", "c"], 1)
    assert kept.targets.tolist() == [3, 2]
    assert judge(Score(0.1, 0.2, 2), Score(0.1, 0.2, 2), k=10, tolerance=0.0, tied=1).reason == (
        "candidate NDCG@10 0.1000 >= serving 0.1000 - tolerance 0 = 0.1000 on the same 2 test "
        "cases (1 with a tied last event left out)"
    )

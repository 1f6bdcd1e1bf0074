"""The gate's rule: the candidate's NDCG@10 at least the serving model's minus the tolerance."""

from __future__ import annotations

from service.learning.gate import Score, judge


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
    }

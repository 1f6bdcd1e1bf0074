"""Assignment by a hash of (experiment, user id): stable, and as the weights say."""

from __future__ import annotations

from collections import Counter

from service.experiments.assignment import Experiments, assign, bucket
from service.store.records import Experiment, Variant

VARIANTS = (
    Variant("control", 1, "personalized"),
    Variant("a", 2, "popular"),
    Variant("b", 7, "personalized"),
)


def experiment(name: str = "exp", variants: tuple[Variant, ...] = VARIANTS) -> Experiment:
    return Experiment(name, variants, created_at=0, ends_at=4e9, expires_at=5e9)


def test_shares_match_the_weights_over_100k_ids() -> None:
    counts = Counter(assign(experiment(), f"user-{i}").name for i in range(100_000))
    # 1:2:7 of 100k; a binomial's sd is at most 158 here, so 4 sd is 650
    for name, expected in (("control", 10_000), ("a", 20_000), ("b", 70_000)):
        assert abs(counts[name] - expected) < 650, counts


def test_a_user_keeps_their_variant_and_another_experiment_reshuffles() -> None:
    first = [assign(experiment(), str(i)).name for i in range(2000)]
    assert first == [assign(experiment(), str(i)).name for i in range(2000)]  # stable
    other = [assign(experiment("other"), str(i)).name for i in range(2000)]
    same = sum(x == y for x, y in zip(first, other, strict=True)) / 2000
    assert 0.45 < same < 0.6  # independent: 0.1^2 + 0.2^2 + 0.7^2 = 0.54 by chance
    assert bucket("exp", "1") == bucket("exp", "1") and 0 <= bucket("exp", "1") < 1


def test_only_a_running_experiment_assigns_and_only_someone() -> None:
    view = Experiments()
    assert view.assign("1") is None
    view.replace([experiment()])
    assigned = view.assign("1")
    assert assigned is not None and assigned.experiment == "exp"
    assert view.assign(None) is None
    view.replace([Experiment("exp", VARIANTS, 0, 4e9, 5e9, stopped_at=1.0)])
    assert view.assign("1") is None

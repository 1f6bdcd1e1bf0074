from __future__ import annotations

import numpy as np

from embeddings.examples import PAD, build_examples, newest_first
from embeddings.weights import event_weight, rating_weights


def test_each_interaction_is_predicted_from_the_ones_before_it_newest_first() -> None:
    examples = build_examples([(np.array([5, 6, 7, 8]), np.array([0.1, 0.2, 0.3, 0.4]))], 2)
    history, weights, targets = examples.batch(examples.positions)
    assert targets.tolist() == [6, 7, 8]
    assert history.tolist() == [[5, PAD], [6, 5], [7, 6]]
    assert weights.tolist() == np.array([[0.1, 0], [0.2, 0.1], [0.3, 0.2]], np.float32).tolist()


def test_a_single_interaction_gives_no_example() -> None:
    examples = build_examples([(np.array([1]), np.ones(1)), (np.array([2, 3]), np.ones(2))], 3)
    assert examples.targets().tolist() == [3]


def test_histories_never_reach_into_the_previous_user() -> None:
    examples = build_examples(
        [(np.array([1, 2, 3]), np.ones(3)), (np.array([7, 8]), np.full(2, 0.5))], 3
    )
    history, weights, targets = examples.batch(examples.positions)
    assert targets.tolist() == [2, 3, 8]
    assert history.tolist() == [[1, PAD, PAD], [2, 1, PAD], [7, PAD, PAD]]
    assert weights[2].tolist() == [0.5, 0.0, 0.0]


def test_an_epoch_visits_every_example_once_in_a_seeded_order() -> None:
    sequences = [(np.arange(i * 10, i * 10 + 5), np.ones(5)) for i in range(7)]
    examples = build_examples(sequences, 4)
    batches = list(examples.batches(6, np.random.default_rng(0)))
    targets = np.concatenate([t for _, _, t in batches])
    assert sorted(targets.tolist()) == sorted(examples.targets().tolist())
    assert [len(t) for _, _, t in batches] == [6, 6, 6, 6, 4]
    again = np.concatenate([t for _, _, t in examples.batches(6, np.random.default_rng(0))])
    assert again.tolist() == targets.tolist()


def test_a_dislike_is_no_input_and_a_target_only_if_asked() -> None:
    """Weight 0 (a dislike) never enters a history, as the service leaves it out of a user's:
    the next input takes its slot."""
    sequence = (np.array([5, 6, 7, 8]), np.array([1.0, 0.0, 0.6, 0.8]))
    examples = build_examples([sequence], 3)
    history, weights, targets = examples.batch(examples.positions)
    assert targets.tolist() == [6, 7, 8]
    assert history.tolist() == [[5, PAD, PAD], [5, PAD, PAD], [7, 5, PAD]]
    assert weights.tolist() == np.array([[1, 0, 0], [1, 0, 0], [0.6, 1, 0]], np.float32).tolist()
    liked_only = build_examples([sequence], 3, dislike_targets=False)
    assert liked_only.targets().tolist() == [7, 8]


def test_an_event_with_no_input_before_it_is_no_example() -> None:
    examples = build_examples([(np.array([1, 2, 3]), np.array([0.0, 1.0, 1.0]))], 2)
    assert examples.targets().tolist() == [3]


def test_newest_first_keeps_the_most_recent() -> None:
    history, weights = newest_first(np.array([1, 2, 3]), np.array([1.0, 0.5, 0.2]), 2)
    assert history.tolist() == [3, 2]
    assert weights.tolist() == [np.float32(0.2), 0.5]


def test_rating_weights_are_event_weights_of_ratings() -> None:
    stars = np.arange(0, 11) / 2
    expected = [np.float32(event_weight("rate", float(r))) for r in stars]
    assert rating_weights(stars).tolist() == expected


def test_event_weights() -> None:
    assert event_weight("watch") == 1.0
    assert event_weight("rate", 5.0) == 1.0
    assert event_weight("rate", 2.5) == 0.5
    assert event_weight("rate", 0.0) == 0.1  # never 0: 0 means padding
    assert event_weight("rate", None) == 1.0
    assert event_weight("watch", 2.5) == 1.0  # the service's kinds are "watch" and "rate"
    assert event_weight("click", 3.0) == 1.0

from __future__ import annotations

import numpy as np
import pytest

from embeddings.data import BUNDLED_DATA, DataError, load_dataset
from embeddings.split import leave_last_out
from tests.support.embeddings import WriteData


@pytest.fixture(scope="module")
def bundled_split():  # type: ignore[no-untyped-def]
    return leave_last_out(load_dataset(BUNDLED_DATA), min_rating=0.0, cold_fraction=0.05, seed=0)


def test_test_and_validation_interactions_never_reach_training(bundled_split) -> None:  # type: ignore[no-untyped-def]
    split = bundled_split
    train = {
        (user, int(movie))
        for user, (movies, _) in zip(split.users, split.train_sequences(), strict=True)
        for movie in movies
    }
    for stage in ("validation", "test"):
        cases = split.cases(stage)
        assert len(cases) == 610  # one per user: leave-last-out
        held_out = {(u, int(m)) for u, m in zip(cases.users, cases.targets, strict=True)}
        assert not held_out & train
    test, validation = split.cases("test"), split.cases("validation")
    assert not set(zip(test.users, test.targets.tolist(), strict=True)) & set(
        zip(validation.users, validation.targets.tolist(), strict=True)
    )


def test_cold_movies_are_about_five_percent_and_never_trained(bundled_split) -> None:  # type: ignore[no-untyped-def]
    split = bundled_split
    rated = len({int(m) for movies in split.sequences for m in movies})
    assert split.cold.sum() == round(0.05 * rated)
    trained = np.concatenate([movies for movies, _ in split.train_sequences()])
    assert not split.cold[trained].any()
    assert split.cold[split.cases("test").targets].any()  # some test cases measure cold movies


def test_history_is_everything_before_the_target_in_time(write_data: WriteData) -> None:
    ratings = [
        ("u", "3", "4", "30"),
        ("u", "1", "5", "10"),
        ("u", "2", "1", "20"),
        ("u", "5", "4", "20"),  # same second as movie 2: file order breaks the tie
    ]
    split = leave_last_out(load_dataset(write_data(ratings)), min_rating=0, cold_fraction=0, seed=0)
    index = {movie_id: i for i, movie_id in enumerate(split.movie_ids)}
    test, validation = split.cases("test"), split.cases("validation")
    assert test.targets.tolist() == [index["3"]]
    assert test.histories[0].tolist() == [index["1"], index["2"], index["5"]]
    assert validation.targets.tolist() == [index["5"]]
    assert split.train_sequences()[0][0].tolist() == [index["1"], index["2"]]
    # The 1-star rating is a dislike: seen (in the history) but weight 0, no input.
    assert test.weights[0].tolist() == pytest.approx([1.0, 0.0, 0.8])
    assert split.report["disliked_ratings"] == 1


def test_dislikes_can_stay_inputs(write_data: WriteData) -> None:
    ratings = [("u", str(m), r, str(m)) for m, r in ((1, "2"), (2, "2.5"), (3, "4"), (4, "1"))]
    split = leave_last_out(
        load_dataset(write_data(ratings)),
        min_rating=0,
        cold_fraction=0,
        seed=0,
        dislike_max_rating=None,
    )
    assert split.weights[0].tolist() == pytest.approx([0.4, 0.5, 0.8, 0.2])
    disliked = leave_last_out(
        load_dataset(write_data(ratings)), min_rating=0, cold_fraction=0, seed=0
    )
    assert disliked.weights[0].tolist() == pytest.approx([0.0, 0.5, 0.8, 0.0])
    assert disliked.cases("test").disliked_targets().tolist() == [True]
    assert disliked.cases("validation").disliked_targets().tolist() == [False]


def test_several_events_per_user_are_held_out_each_from_everything_before_it(
    write_data: WriteData,
) -> None:
    ratings = [("u", str(m), "4", str(m)) for m in range(1, 6)]
    ratings += [("short", str(m), "4", str(m)) for m in range(1, 5)]  # 4 < 2 x 2 + 1
    split = leave_last_out(
        load_dataset(write_data(ratings)), min_rating=0, cold_fraction=0, seed=0, events=2
    )
    index = {movie_id: i for i, movie_id in enumerate(split.movie_ids)}
    test, validation = split.cases("test"), split.cases("validation")
    assert test.users == ["u", "u"] and validation.users == ["u", "u"]
    assert test.targets.tolist() == [index["4"], index["5"]]
    assert [h.tolist() for h in test.histories] == [
        [index[m] for m in "123"],
        [index[m] for m in "1234"],
    ]
    assert validation.targets.tolist() == [index["2"], index["3"]]
    trains = dict(zip(split.users, (m.tolist() for m, _ in split.train_sequences()), strict=True))
    assert trains == {"u": [index["1"]], "short": [index[m] for m in "1234"]}
    assert split.report["users_too_short_to_evaluate"] == 1


def test_short_users_are_counted_and_only_train(write_data: WriteData) -> None:
    ratings = [
        *[("long", str(m), "4", str(m)) for m in (1, 2, 3, 4)],
        ("pair", "1", "4", "1"),
        ("pair", "2", "4", "2"),
        ("single", "3", "4", "1"),
    ]
    split = leave_last_out(load_dataset(write_data(ratings)), min_rating=0, cold_fraction=0, seed=0)
    assert split.report["users_with_one_interaction"] == 1
    assert split.report["users_too_short_to_evaluate"] == 1
    assert split.cases("test").users == ["long"]
    trains = dict(zip(split.users, (len(m) for m, _ in split.train_sequences()), strict=True))
    assert trains == {"long": 2, "pair": 2, "single": 1}


def test_a_threshold_drops_low_ratings(write_data: WriteData) -> None:
    stars = ((1, "5"), (2, "2"), (3, "4"), (4, "4"), (5, "3.5"))
    ratings = [("u", str(m), r, str(m)) for m, r in stars]
    split = leave_last_out(
        load_dataset(write_data(ratings)), min_rating=3.5, cold_fraction=0, seed=0
    )
    assert split.report["ratings_below_threshold"] == 1
    assert len(split.sequences[0]) == 4


def test_no_user_long_enough_is_a_data_error(write_data: WriteData) -> None:
    ratings = [("a", "1", "4", "1"), ("b", "1", "4", "1"), ("b", "2", "4", "2")]
    with pytest.raises(DataError, match="nothing to evaluate"):
        leave_last_out(load_dataset(write_data(ratings)), min_rating=0, cold_fraction=0, seed=0)


def test_cold_cases_are_every_later_interaction_with_a_cold_movie(bundled_split) -> None:  # type: ignore[no-untyped-def]
    split = bundled_split
    cases = split.cold_cases()
    assert split.cold[cases.targets].all()
    assert len(cases) > 1000  # far steadier than the few test cases ending on a cold movie
    for history, target in zip(cases.histories[:50], cases.targets[:50], strict=True):
        assert len(history) > 0 and target not in history

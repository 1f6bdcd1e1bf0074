"""The training choices left to the data."""

from __future__ import annotations

from embeddings.config import HISTORY_CACHE_MIN_MOVIES, HISTORY_REFRESH_STEPS, TrainConfig


def test_the_history_cache_is_chosen_for_a_large_catalog_only() -> None:
    auto = TrainConfig()
    assert auto.history_refresh_steps is None
    small = auto.for_catalog(HISTORY_CACHE_MIN_MOVIES - 1)
    large = auto.for_catalog(HISTORY_CACHE_MIN_MOVIES)
    assert small.history_refresh_steps == 0
    assert large.history_refresh_steps == HISTORY_REFRESH_STEPS > 0
    assert small.to_dict() != large.to_dict()  # so the model version says which ran


def test_an_explicit_choice_is_kept_whatever_the_catalog() -> None:
    assert TrainConfig(history_refresh_steps=0).for_catalog(10**6).history_refresh_steps == 0
    assert TrainConfig(history_refresh_steps=3).for_catalog(10).history_refresh_steps == 3


def test_negatives_are_in_batch_by_default_and_in_the_version() -> None:
    auto = TrainConfig()
    assert auto.negatives == "in_batch"
    catalog = TrainConfig(negatives="catalog")
    assert auto.to_dict() != catalog.to_dict()  # the model version says which ran
    # A full softmax runs the movie tower over the whole catalog: no history cache then.
    assert catalog.for_catalog(HISTORY_CACHE_MIN_MOVIES).history_refresh_steps == 0

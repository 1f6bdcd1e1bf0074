"""Metrics the replica keeps about itself."""

from __future__ import annotations

import gc

from service.metrics import Metrics


def test_every_garbage_collection_is_timed_by_generation_until_unwatched() -> None:
    metrics = Metrics()
    stop = metrics.watch_gc()
    gc.collect()
    stop()
    gc.collect()  # not counted: the app's lifespan ended

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"generation": "2"})

    assert sample("movie_recs_gc_pause_seconds_count") == 1
    assert (sample("movie_recs_gc_pause_seconds_sum") or 0) > 0

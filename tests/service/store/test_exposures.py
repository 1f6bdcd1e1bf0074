"""The exposure, attribution and experiment half of the store contract, on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import redis

from bench.harness.redis import RedisServer
from service.store import Event, InvalidRecord, Store, keys, open_store
from service.store.errors import ExperimentConflict, UnknownExperiment
from service.store.records import (
    MAX_KEPT_EXPERIMENTS,
    Experiment,
    Exposure,
    ExposureLimits,
    Variant,
)

pytestmark = pytest.mark.anyio

LIMITS = ExposureLimits(ttl_seconds=3600, log_max_len=1000, per_subject=5)
VARIANTS = (Variant("control", 1, "personalized"), Variant("pop", 1, "popular"))


def exposure(
    subject: str | None = "u1",
    items: tuple[str, ...] = ("1", "2", "3"),
    experiment: str | None = None,
    variant: str | None = None,
) -> Exposure:
    return Exposure(
        uuid.uuid4().hex, subject, items, "user", "personalized", "m1", time.time(),
        experiment, variant,
    )  # fmt: skip


def experiment(name: str = "exp", created: float | None = None, **kw: object) -> Experiment:
    now = time.time() if created is None else created
    fields: dict[str, object] = {"ends_at": now + 86400, "expires_at": now + 2 * 86400, **kw}
    return Experiment(name, VARIANTS, now, **fields)  # type: ignore[arg-type]


async def test_exposures_round_trip_newest_first(store: Store) -> None:
    first, second, anonymous = exposure(), exposure(items=("9",)), exposure(subject=None)
    await store.add_exposures([first, second, anonymous], LIMITS)

    assert await store.subject_exposures("u1") == [second, first]
    assert await store.subject_exposures("nobody") == []
    assert await store.exposure_log(10) == [anonymous, second, first]
    assert second.position("9") == 1 and first.position("3") == 3 and first.position("9") is None


async def test_exposures_fill_and_trim_by_count(store: Store) -> None:
    limits = ExposureLimits(ttl_seconds=3600, log_max_len=100, per_subject=5)
    shown = [exposure(subject=f"u{i % 3}") for i in range(130)]
    for start in range(0, 130, 20):
        await store.add_exposures(shown[start : start + 20], limits)

    assert await store.count_exposure_log() == 100
    assert [e.id for e in await store.exposure_log(1000)] == [e.id for e in shown[:29:-1]]
    for subject in ("u0", "u1", "u2"):
        kept = await store.subject_exposures(subject)
        assert [e.id for e in kept] == [e.id for e in shown if e.subject == subject][:-6:-1]


async def test_exposures_expire_with_their_lifetime(store: Store) -> None:
    short = ExposureLimits(ttl_seconds=0.3, log_max_len=100, per_subject=5)
    await store.add_exposures([exposure(), exposure(subject="u2")], short)
    await asyncio.sleep(0.5)
    assert await store.subject_exposures("u1") == []
    fresh = exposure(subject="u3")
    await store.add_exposures([fresh], short)  # trims the log of what is older than 0.3 s
    assert await store.exposure_log(10) == [fresh]


async def test_a_bad_exposure_stores_nothing(store: Store) -> None:
    bad = Exposure("not-hex", "u1", ("1",), "user", "personalized", "m1", time.time())
    with pytest.raises(InvalidRecord):
        await store.add_exposures([exposure(), bad], LIMITS)
    assert await store.count_exposure_log() == 0


async def test_attribution_counts_once_per_exposure_and_movie(store: Store) -> None:
    await store.create_experiment(experiment())
    shown = exposure(experiment="exp", variant="pop")
    other = exposure(subject="u2", experiment="exp", variant="control")
    await store.add_exposures([shown, other, exposure(experiment="exp", variant="pop")], LIMITS)

    assert await store.claim_attribution(shown, "1", 3600)
    assert not await store.claim_attribution(shown, "1", 3600)  # the same event again
    assert await store.claim_attribution(shown, "2", 3600)
    assert not await store.claim_attribution(exposure(subject=None), "1", 3600)

    assert await store.experiment_counts("exp") == {
        ("pop", "u1"): (2, 2),
        ("control", "u2"): (1, 0),
    }


async def test_erasing_a_user_erases_what_they_were_shown(store: Store) -> None:
    await store.create_experiment(experiment())
    shown = exposure(experiment="exp", variant="pop")
    await store.add_exposures(
        [shown, exposure(subject="u2", experiment="exp", variant="pop")], LIMITS
    )
    await store.add_events("u1", [Event("1", "watch", time.time())])
    await store.claim_attribution(shown, "1", 3600)

    await store.erase_user("u1")

    assert await store.subject_exposures("u1") == []
    assert list(await store.experiment_counts("exp")) == [("pop", "u2")]
    assert await store.claim_attribution(shown, "1", 3600)  # the claim went too


async def test_one_experiment_runs_at_a_time_and_names_are_not_reused(store: Store) -> None:
    await store.create_experiment(experiment("a"))
    with pytest.raises(ExperimentConflict, match="running"):
        await store.create_experiment(experiment("b"))
    stopped = await store.stop_experiment("a", 123.0)
    assert stopped.stopped_at == 123.0 and not stopped.active(time.time())
    assert (await store.stop_experiment("a", 456.0)).stopped_at == 123.0
    with pytest.raises(ExperimentConflict, match="exists"):
        await store.create_experiment(experiment("a"))
    await store.create_experiment(experiment("b"))
    assert [e.name for e in await store.experiments()] == ["a", "b"]
    with pytest.raises(UnknownExperiment):
        await store.stop_experiment("nope", 1.0)


async def test_experiments_kept_are_bounded_and_expired_ones_go_with_their_counts(
    store: Store,
) -> None:
    now = time.time()
    await store.create_experiment(experiment("old", now - 10, ends_at=now - 5, expires_at=now - 1))
    await store.add_exposures([exposure(experiment="old", variant="pop")], LIMITS)
    for i in range(MAX_KEPT_EXPERIMENTS + 5):
        await store.create_experiment(experiment(f"e{i}", now + i, stopped_at=now + i))
    kept = [e.name for e in await store.experiments()]
    assert len(kept) == MAX_KEPT_EXPERIMENTS and kept[-1] == f"e{MAX_KEPT_EXPERIMENTS + 4}"
    assert "old" not in kept and await store.experiment_counts("old") == {}


async def test_subject_lists_live_beside_the_history_when_activity_has_its_own_redis(
    redis_url: str, tmp_path: Path
) -> None:
    with RedisServer(tmp_path / "activity") as activity:
        store = await open_store(redis_url, activity_url=activity.url, activity_max_events=5)
        try:
            limits = ExposureLimits(ttl_seconds=3600, log_max_len=100, per_subject=3)
            shown = [exposure(experiment=None) for _ in range(5)]
            await store.add_exposures(shown, limits)
            assert [e.id for e in await store.subject_exposures("u1")] == [
                e.id for e in shown[:1:-1]
            ]
            assert await store.count_exposure_log() == 5
            listed = redis.Redis.from_url(activity.url)
            assert listed.exists(keys.exposures("u1")) and listed.ttl(keys.exposures("u1")) > 0
            listed.close()
            await store.erase_user("u1")
            assert await store.subject_exposures("u1") == []
        finally:
            await store.close()

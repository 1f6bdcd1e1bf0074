"""The exposure recorder: bounded, and a store outage costs counted exposures, not requests."""

from __future__ import annotations

import time
import uuid

import pytest

from bench.harness.redis import RedisServer
from service.experiments.exposures import ExposureRecorder
from service.metrics import Metrics
from service.store import open_store
from service.store.records import Exposure, ExposureLimits

pytestmark = pytest.mark.anyio
LIMITS = ExposureLimits(ttl_seconds=3600, log_max_len=1000, per_subject=10)


def shown(subject: str = "u1") -> Exposure:
    return Exposure(uuid.uuid4().hex, subject, ("1",), "user", "popular", "m", time.time())


def counted(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("movie_recs_exposures_total", {"outcome": outcome})
    return value or 0.0


async def test_an_outage_drops_and_counts_then_recording_resumes(own_redis: RedisServer) -> None:
    store = await open_store(own_redis.url, timeout=0.3)
    metrics = Metrics()
    recorder = ExposureRecorder(store, metrics, LIMITS, queue_size=4, flush_seconds=1)
    try:
        for _ in range(6):  # two past the queue's size
            recorder.record(shown())
        assert await recorder.flush() == 4
        assert counted(metrics, "dropped") == 2 and counted(metrics, "recorded") == 4

        own_redis.freeze()
        recorder.record(shown())
        started = time.monotonic()
        assert await recorder.flush() == 0  # no exception: the batch is counted as failed
        assert time.monotonic() - started < 2 and counted(metrics, "failed") == 1
        own_redis.thaw()

        recorder.record(shown())
        assert await recorder.flush() == 1
        # the batch sent to the frozen server may still land once it thaws: "failed" means
        # not known to be recorded
        assert len(await store.subject_exposures("u1")) in (5, 6)
    finally:
        own_redis.thaw()
        await store.close()

"""The replica's tracking parts, started and stopped by the app's lifespan: the experiments it
assigns from (read at start, then every `experiment_poll_seconds`) and the exposure recorder
(flushed every `exposure_flush_seconds`, and once more on shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from service.config import Settings
from service.experiments.assignment import Experiments
from service.experiments.exposures import ExposureRecorder
from service.metrics import Metrics
from service.store import Store, StoreError
from service.store.records import ExposureLimits

log = logging.getLogger("service.experiments")
SHUTDOWN_FLUSH_SECONDS = 5.0


def exposure_limits(settings: Settings) -> ExposureLimits:
    return ExposureLimits(
        ttl_seconds=settings.attribution_window_hours * 3600,
        log_max_len=settings.exposure_log_max_len,
        per_subject=settings.exposures_per_subject,
    )


@dataclass(eq=False)
class Tracking:
    store: Store
    settings: Settings
    experiments: Experiments
    recorder: ExposureRecorder
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    failing: bool = False  # log an outage once

    @classmethod
    async def start(cls, settings: Settings, store: Store, metrics: Metrics) -> Tracking:
        recorder = ExposureRecorder(
            store,
            metrics,
            exposure_limits(settings),
            queue_size=settings.exposure_queue_size,
            flush_seconds=settings.exposure_flush_seconds,
        )
        tracking = cls(store, settings, Experiments(), recorder)
        await tracking.refresh()
        tracking.tasks = [
            asyncio.create_task(recorder.run(), name="exposures"),
            asyncio.create_task(tracking._poll(), name="experiments"),
        ]
        return tracking

    async def refresh(self) -> None:
        """Read the experiments; a store failure keeps the last copy (fail static)."""
        try:
            self.experiments.replace(await self.store.experiments())
        except StoreError as exc:
            if not self.failing:
                log.warning("experiments not refreshed, the last copy assigns: %s", exc)
            self.failing = True
        else:
            self.failing = False

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.experiment_poll_seconds)
            await self.refresh()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_FLUSH_SECONDS):
                await self.recorder.flush()

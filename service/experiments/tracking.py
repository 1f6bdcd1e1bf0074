"""The replica's tracking parts, started and stopped by the app's lifespan: the experiments it
assigns from (read at start, then every `experiment_poll_seconds`), the model versions their
variants name (`models.py`), and the exposure recorder (flushed every
`exposure_flush_seconds`, and once more on shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from service.config import Settings
from service.experiments.assignment import Assignment, Experiments
from service.experiments.exposures import ExposureRecorder
from service.experiments.models import VariantModels, named_models
from service.index.refresher import Refresher
from service.index.view import Serving
from service.metrics import Metrics
from service.store import Store, StoreError
from service.store.records import Experiment, ExposureLimits

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
    models: VariantModels
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    failing: bool = False  # log an outage once

    @classmethod
    async def start(
        cls, settings: Settings, store: Store, metrics: Metrics, served: Refresher
    ) -> Tracking:
        recorder = ExposureRecorder(
            store,
            metrics,
            exposure_limits(settings),
            queue_size=settings.exposure_queue_size,
            flush_seconds=settings.exposure_flush_seconds,
        )
        tracking = cls(store, settings, Experiments(), recorder, VariantModels(served))
        await tracking.refresh()
        tracking.tasks = [
            asyncio.create_task(recorder.run(), name="exposures"),
            asyncio.create_task(tracking._poll(), name="experiments"),
        ]
        return tracking

    async def refresh(self) -> None:
        """Read the experiments; a store failure keeps the last copy (fail static)."""
        try:
            found = await self.store.experiments()
        except StoreError as exc:
            if not self.failing:
                log.warning("experiments not refreshed, the last copy assigns: %s", exc)
            self.failing = True
        else:
            self.failing = False
            await self.adopt(found)

    async def adopt(self, experiments: list[Experiment]) -> None:
        """Assign from `experiments` from now on, holding the model versions they name."""
        self.experiments.replace(experiments)
        await self.models.hold(named_models(self.experiments.running()))

    def assign(self, subject: str | None) -> tuple[Assignment | None, Serving | None]:
        """The subject's variant and, when it names a model version, that model's serving.
        While any version the experiment names is not ready in this replica, nobody here is
        assigned (all get the promoted model, recorded outside the experiment): every variant
        loses the same share, so neither the ratio nor a variant's figures are bent."""
        assigned = self.experiments.assign(subject)
        if assigned is None:
            return None, None
        experiment = self.experiments.running()
        servings = {v: self.models.serving(v) for v in named_models(experiment)}
        if None in servings.values():
            return None, None
        model = assigned.variant.model
        return assigned, servings[model] if model is not None else None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.experiment_poll_seconds)
            await self.refresh()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.models.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_FLUSH_SECONDS):
                await self.recorder.flush()

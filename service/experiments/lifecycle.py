"""Creating and stopping experiments: one rule for the CLI and the admin route."""

from __future__ import annotations

import time
from collections.abc import Sequence

from service.config import Settings
from service.store import InvalidRecord, Store
from service.store.records import Experiment, Variant, experiment_problem

DAY = 86400.0


def new_experiment(
    settings: Settings, name: str, variants: Sequence[Variant], days: float | None = None
) -> Experiment:
    """An experiment starting now; InvalidRecord (a 422) saying what is wrong. It assigns for
    `days` (default and most: `experiment_max_days`) and is kept `experiment_retention_days`
    after that."""
    if problem := experiment_problem(name, variants):
        raise InvalidRecord(problem)
    longest = settings.experiment_max_days
    if days is not None and not 0 < days <= longest:
        raise InvalidRecord(f"days must be above 0 and at most {longest:g}")
    now = time.time()
    ends_at = now + (days or longest) * DAY
    return Experiment(
        name,
        tuple(variants),
        created_at=now,
        ends_at=ends_at,
        expires_at=ends_at + settings.experiment_retention_days * DAY,
    )


async def stop(store: Store, name: str) -> Experiment:
    """UnknownExperiment when there is none by that name."""
    return await store.stop_experiment(name, time.time())

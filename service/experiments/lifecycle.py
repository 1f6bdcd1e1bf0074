"""Creating and stopping experiments: one rule for the CLI and the admin route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence

from embeddings.registry import RegistryError, open_registry
from service.config import Settings
from service.store import InvalidRecord, Store, StoreError
from service.store.records import Experiment, Variant, experiment_problem

DAY = 86400.0
REGISTRY_SECONDS = 10.0  # listing the registry's versions (S3: one paged LIST)


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


async def check_models(
    settings: Settings, variants: Sequence[Variant], present: Collection[str] = ()
) -> None:
    """InvalidRecord unless every model version a variant names is in the registry or in
    `present` (the image's own and the served one need no registry); StoreError (a 503) when
    the registry cannot be listed in time."""
    named = {v.model for v in variants if v.model is not None} - set(present)
    if not named:
        return

    def listed() -> set[str]:
        return {info.version for info in open_registry(settings.registry_url).versions()}

    try:
        async with asyncio.timeout(REGISTRY_SECONDS):
            known = await asyncio.to_thread(listed)
    except (RegistryError, OSError, TimeoutError) as exc:
        raise StoreError(f"cannot list the model registry: {exc or 'timed out'}") from None
    if unknown := sorted(named - known):
        raise InvalidRecord(
            f"model version(s) {', '.join(unknown)} not in the registry "
            f"({settings.registry_url}): publish them first (`movie-recs retrain` or "
            "`movie-recs models publish DIR`)"
        )

"""One replica's state, assembled once: store + towers + refresher (the live index) + recommender.

The app's lifespan and lambdafit's Lambda-style handler both build it here, so the thing the
report measures is the thing that serves. What differs stays with the caller: the app tails the
change log in a task; a function instance only full-syncs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from service.config import Settings
from service.index.live import index_params, set_threads
from service.index.refresher import Refresher
from service.index.snapshot_file import SnapshotDir
from service.metrics import Metrics
from service.model_source import ModelSource
from service.recommender import Recommender
from service.store import Store, StoreError, store_from_settings
from service.towers import ModelLoadError, Towers, load_towers

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Replica:
    settings: Settings
    store: Store
    refresher: Refresher  # the only writer of the live index and of the served model
    recommender: Recommender

    @property
    def towers(self) -> Towers:
        """The model served now (a promoted version replaces it together with the index)."""
        return self.refresher.towers

    def require_movies(self) -> None:
        """Refuse to serve an empty index (a store nobody imported into): fail startup loudly."""
        if len(self.refresher.live or ()) == 0:
            raise StoreError(
                f"{self.settings.store_url} holds no movies; "
                "run `movie-recs import-movielens` first"
            )

    async def close(self) -> None:
        await self.store.close()


async def open_replica(
    settings: Settings,
    metrics: Metrics,
    towers: Towers | None = None,
    *,
    snapshots: bool = True,
) -> Replica:
    """Open the store and load the towers (NumPy, checked: see towers.py); nothing is
    indexed yet (`refresher.catch_up()` or a full sync does that). The model is the version the
    store says to serve, fetched from the registry, else (none promoted, or it cannot be had)
    the settings' own; the refresher follows later promotions. `towers`: an already loaded
    model to serve instead (read-only, so sharing one is safe; tests). `snapshots`: start from
    and write snapshot files when the settings name a directory."""
    set_threads(settings.omp_threads)
    store = await store_from_settings(settings)
    models = ModelSource(settings.registry_url, settings.model_cache_dir)
    try:
        if towers is None:
            towers = await _starting_model(settings, store, models)
        directory = settings.snapshot_dir if snapshots else None
        refresher = Refresher(
            store,
            towers,
            index_params(settings),
            metrics,
            compact_at=settings.compact_at,
            min_fraction=settings.resync_min_fraction,
            snapshots=SnapshotDir(directory, settings.snapshot_keep) if directory else None,
            models=models,
            model_poll_seconds=settings.model_poll_seconds,
        )
    except BaseException:
        await store.close()
        raise
    return Replica(settings, store, refresher, Recommender(refresher, settings.dislike_max_rating))


async def _starting_model(settings: Settings, store: Store, models: ModelSource) -> Towers:
    own = await asyncio.to_thread(load_towers, settings.artifacts_dir, settings.model_version)
    models.own = own
    promoted = await store.serving_model()
    if promoted is None or promoted == own.version:
        return own
    try:
        return await asyncio.to_thread(models.load, promoted)
    except ModelLoadError as exc:  # serve the image's model; the refresher retries
        log.error("starting with model %s: %s", own.version, exc)
        return own

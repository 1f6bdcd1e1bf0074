"""One replica's state, assembled once: store + towers + refresher (the live index) + recommender.

The app's lifespan and lambdafit's Lambda-style handler both build it here, so the thing the
report measures is the thing that serves. What differs stays with the caller: the app tails the
change log in a task and loads TensorFlow after ready; a function instance only full-syncs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.config import Settings
from service.index.live import index_params, set_threads
from service.index.refresher import Refresher
from service.index.snapshot_file import SnapshotDir
from service.metrics import Metrics
from service.recommender import Recommender
from service.store import Store, StoreError, store_from_settings
from service.towers import Towers, load_towers


@dataclass(eq=False)
class Replica:
    settings: Settings
    store: Store
    towers: Towers
    refresher: Refresher  # the only writer of the live index
    recommender: Recommender

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
    """Open the store and load the towers (TensorFlow deferred: see towers.py); nothing is
    indexed yet (`refresher.catch_up()` or a full sync does that). `towers`: an already loaded
    model to serve instead of the settings' (read-only, so sharing one is safe). `snapshots`:
    start from and write snapshot files when the settings name a directory."""
    set_threads(settings.omp_threads)
    store = await store_from_settings(settings)
    try:
        if towers is None:
            towers = await asyncio.to_thread(
                load_towers,
                settings.artifacts_dir,
                settings.model_version,
                settings.tf_threads,
                defer_tensorflow=True,
            )
        directory = settings.snapshot_dir if snapshots else None
        refresher = Refresher(
            store,
            towers,
            index_params(settings),
            metrics,
            compact_at=settings.compact_at,
            min_fraction=settings.resync_min_fraction,
            snapshots=SnapshotDir(directory, settings.snapshot_keep) if directory else None,
        )
    except BaseException:
        await store.close()
        raise
    return Replica(
        settings, store, towers, refresher, Recommender(towers, refresher, towers.popular)
    )

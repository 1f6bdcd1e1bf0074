"""`create_app(settings)`: the FastAPI app. Everything heavy happens in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from service.api.access import ADMIN, EVENTS, READ, USERS, Access, load_access
from service.api.admission import Admission
from service.api.deps import require
from service.api.errors import install_handlers
from service.api.middleware import EdgeMiddleware
from service.api.offload import Offload
from service.api.page import mount_page
from service.api.routes import (
    catalog,
    events,
    experiments,
    health,
    movies,
    recommendations,
    search,
    users,
    webhooks,
)
from service.api.state import AppState
from service.config import Settings
from service.experiments.tracking import Tracking
from service.index.titles import title_index
from service.metrics import Metrics
from service.replica import open_replica
from service.towers import Towers

log = logging.getLogger("service")
WEBHOOK_PATH = "/v1/webhooks/catalog"
HEALTH_PATHS = ("/healthz", "/readyz")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    access: Access = app.state.access
    if access.open:
        log.warning("auth is disabled (MOVIE_RECS_AUTH_DISABLED): /v1 is open to anyone")
    for key in access.keys.keys.values():
        if key.legacy:
            log.warning("API key %s has no name and scopes: it has full access", key.name)
    began = time.perf_counter()
    replica = await open_replica(settings, metrics, app.state.prebuilt_towers)
    unwatch_gc = metrics.watch_gc()  # the collections the index load and requests cause
    towers, refresher = replica.towers, replica.refresher
    refreshing: asyncio.Task[None] | None = None
    tracking: Tracking | None = None
    try:
        model_loaded = time.perf_counter()
        await refresher.catch_up()
        index_loaded = time.perf_counter()
        replica.require_movies()
        live = refresher.live
        assert live is not None
        metrics.model.info({"version": towers.version})
        metrics.store_up.set(1)
        tracking = await Tracking.start(settings, replica.store, metrics, refresher)
        app.state.app_state = AppState(
            settings=settings,
            store=replica.store,
            index=refresher,
            metrics=metrics,
            recommender=replica.recommender,
            access=access,
            admission=app.state.admission,
            offload=Offload(settings.work_threads, settings.work_timeout_seconds),
            experiments=tracking.experiments,
            exposures=tracking.recorder,
            tracking=tracking,
        )
        await title_index(live.base)  # search is ready before the first request
        titles_built = time.perf_counter()
        # The catalog, model and index are long-lived: move them out of the collector's
        # generations so full collections stop rescanning them on the request path.
        gc.collect()
        gc.freeze()
        refreshing = asyncio.create_task(refresher.run(), name="refresher")
        metrics.model_checked.set(1)  # load_towers checked both towers against the probe
        log.info(
            "ready: model %s, %d movies indexed (%s) at sequence %d, from %s; startup phases: "
            "model %.2fs, index %.2fs, title index %.2fs, lifespan %.2fs",
            towers.version,
            len(live),
            live.base.kind,
            refresher.index_version,
            refresher.started_from,
            model_loaded - began,
            index_loaded - model_loaded,
            titles_built - index_loaded,
            time.perf_counter() - began,
        )
        yield
    finally:
        if refreshing is not None:
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing
        if tracking is not None:
            await tracking.stop()
        await replica.close()
        unwatch_gc()


def create_app(settings: Settings | None = None, towers: Towers | None = None) -> FastAPI:
    """`towers`: an already loaded model to serve instead of loading `settings`' (tests share
    one across apps; read-only, so sharing is safe).

    Raises AccessConfigError / BadWebhookSecret (`load_access`) before anything starts."""
    settings = settings or Settings()
    access = load_access(settings)
    app = FastAPI(
        title="movie-recs",
        version="1",
        summary="Movie recommendations from a two-tower model and an in-memory FAISS index.",
        lifespan=lifespan,
        # No 307 to the slashed path: its Location would echo the request's Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.access = access
    app.state.admission = Admission(settings.max_in_flight, settings.max_waiting)
    app.state.prebuilt_towers = towers
    app.state.metrics = Metrics()
    v1 = APIRouter(prefix="/v1")
    for module, scope in (
        (recommendations, READ),
        (movies, READ),
        (search, READ),
        (catalog, READ),
        (events, EVENTS),
        (users, USERS),
        (experiments, ADMIN),
    ):
        v1.include_router(module.router, dependencies=[require(scope)])
    app.include_router(v1)
    # Webhooks authenticate by signature, not by API key.
    app.include_router(webhooks.router, prefix="/v1")
    app.include_router(health.router)
    if settings.page:
        mount_page(app)
    install_handlers(app)
    app.add_middleware(
        EdgeMiddleware,
        metrics=app.state.metrics,
        admission=app.state.admission,
        exempt=HEALTH_PATHS,
        default_body_limit=settings.max_body_bytes,
        body_limits={WEBHOOK_PATH: settings.webhook_max_body_bytes},
        raw_paths=[WEBHOOK_PATH],
        read_timeout=settings.read_timeout_seconds,
    )
    return app

"""`create_app(settings)`: the FastAPI app. Everything heavy happens in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.deps import require_api_key
from service.api.middleware import EdgeMiddleware
from service.api.page import mount_page
from service.api.routes import (
    catalog,
    events,
    health,
    movies,
    recommendations,
    search,
    users,
    webhooks,
)
from service.api.state import AppState
from service.config import Settings
from service.index.live import index_params, set_threads
from service.index.refresher import Refresher
from service.index.snapshot_file import SnapshotDir
from service.index.titles import title_index
from service.metrics import Metrics
from service.recommender import Recommender
from service.store import InvalidRecord, StoreError, store_from_settings
from service.towers import Towers, load_towers

log = logging.getLogger("service")
WEBHOOK_PATH = "/v1/webhooks/catalog"
HEALTH_PATHS = ("/healthz", "/readyz")
RETRY_AFTER_SECONDS = 1


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    set_threads(settings.omp_threads)
    if not settings.api_keys:
        log.warning(
            "!!! NO API KEY CONFIGURED: /v1 IS OPEN TO ANYONE (set MOVIE_RECS_API_KEYS) !!!"
        )
    began = time.perf_counter()
    store = await store_from_settings(settings)
    refreshing: asyncio.Task[None] | None = None
    try:
        # TensorFlow loads after ready (or when the refresher first embeds a movie): see towers.py.
        towers: Towers = app.state.prebuilt_towers or await asyncio.to_thread(
            load_towers,
            settings.artifacts_dir,
            settings.model_version,
            settings.tf_threads,
            defer_tensorflow=True,
        )
        snapshots = (
            SnapshotDir(settings.snapshot_dir, settings.snapshot_keep)
            if settings.snapshot_dir is not None
            else None
        )
        refresher = Refresher(
            store,
            towers,
            index_params(settings),
            metrics,
            compact_at=settings.compact_at,
            min_fraction=settings.resync_min_fraction,
            snapshots=snapshots,
        )
        model_loaded = time.perf_counter()
        await refresher.catch_up()
        index_loaded = time.perf_counter()
        live = refresher.live
        assert live is not None
        if len(live) == 0:
            raise StoreError(
                f"{settings.store_url} holds no movies; run `movie-recs import-movielens` first"
            )
        metrics.model.info({"version": towers.version})
        metrics.store_up.set(1)
        app.state.app_state = AppState(
            settings=settings,
            store=store,
            towers=towers,
            index=refresher,
            metrics=metrics,
            recommender=Recommender(towers, refresher, towers.popular),
        )
        await title_index(live.base)  # search is ready before the first request
        titles_built = time.perf_counter()
        # The catalog, model and index are long-lived: move them out of the collector's
        # generations so full collections stop rescanning them on the request path.
        gc.collect()
        gc.freeze()
        refreshing = asyncio.create_task(refresher.run(), name="refresher")
        towers.when_tensorflow_loaded(partial(_model_checked, metrics))
        towers.start_tensorflow()
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
        await store.close()


def _model_checked(metrics: Metrics, loaded: Future[Any]) -> None:
    """After the background TensorFlow load: a failed load or check is an alert, and the
    replica stays unready (readiness reads `Towers.model_error`)."""
    error = loaded.exception()
    if error is None:
        metrics.model_checked.set(1)
    else:
        metrics.model_check_failed.set(1)
        log.error("the model cannot be served, this replica turns unready: %s", error)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    """Any store failure (refused, reset, timed out, no connection free): 503, retry soon."""
    request.app.state.metrics.store_unavailable.inc()
    return JSONResponse(
        {"detail": f"store unavailable: {exc}"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _invalid_record(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


def _json_safe(value: Any) -> Any:
    """Error details echo the input; a non-finite float there would make the 422 itself fail."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors(), exclude={"url", "ctx"}))
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(settings: Settings | None = None, towers: Towers | None = None) -> FastAPI:
    """`towers`: an already loaded model to serve instead of loading `settings`' (tests share
    one across apps; read-only, so sharing is safe)."""
    settings = settings or Settings()
    app = FastAPI(
        title="movie-recs",
        version="1",
        summary="Movie recommendations from a two-tower model and an in-memory FAISS index.",
        lifespan=lifespan,
        # No 307 to the slashed path: its Location would echo the request's Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.prebuilt_towers = towers
    app.state.metrics = Metrics()
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    for module in (recommendations, events, movies, search, users, catalog):
        v1.include_router(module.router)
    app.include_router(v1)
    # Webhooks authenticate by signature, not by API key.
    app.include_router(webhooks.router, prefix="/v1")
    app.include_router(health.router)
    if settings.page:
        mount_page(app)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(InvalidRecord, _invalid_record)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(
        EdgeMiddleware,
        metrics=app.state.metrics,
        max_in_flight=settings.max_in_flight,
        exempt=HEALTH_PATHS,
        default_body_limit=settings.max_body_bytes,
        body_limits={WEBHOOK_PATH: settings.webhook_max_body_bytes},
        raw_paths=[WEBHOOK_PATH],
        read_timeout=settings.read_timeout_seconds,
    )
    return app

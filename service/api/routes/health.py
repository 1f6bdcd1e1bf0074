"""Liveness (never touches the store), readiness (index built and caught up), metrics (which
read the store's memory use).

Neither check touches the store: readiness says what this replica alone lacks (no index yet,
a resync after it fell behind the log), and reports a store outage or a lost catalog as fields
while the last good index goes on serving (fail static: see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.schemas import Readiness
from service.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers. Nothing else is checked, so a store outage never restarts tasks."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Readiness}})
async def readyz(request: Request, response: Response) -> Readiness:
    """Ready when the model is loaded (its towers passed their probe) and the index caught up
    with the change log (as far as the store last said: an unreachable store does not make a
    replica unready)."""
    app_state = getattr(request.app.state, "app_state", None)
    if app_state is None or app_state.index.live is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(ready=False, reason="starting: model or index not loaded")
    index = app_state.index
    ready = index.caught_up  # a Towers exists only once its probe passed
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        ready=ready,
        reason=None if ready else "catching up with the change log",
        model_version=index.towers.version,
        model_swap_error=index.model_error,
        index_version=index.index_version,
        index_size=len(index.live),
        lag=max(0, index.head - index.index_version),
        store_error=index.store_error,
        catalog_lost=index.catalog_lost,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The store's memory is read at scrape time (one INFO per node, under the store's
    deadline); when the store cannot say, the gauge keeps its last value and the scrape goes on."""
    app_state = request.app.state.app_state
    app_state.metrics.index_size.set(len(app_state.index.live or ()))
    app_state.metrics.index_version.set(app_state.index.index_version)
    with contextlib.suppress(StoreError):
        for part, used in (await app_state.store.memory_bytes()).items():
            app_state.metrics.store_memory_bytes.labels(part=part).set(used)
    return Response(generate_latest(app_state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""Liveness (never touches the store), readiness (index built and caught up), metrics.

Neither check touches the store: readiness says what this replica alone lacks (no index yet,
a resync after it fell behind the log), and reports a store outage or a lost catalog as fields
while the last good index goes on serving (fail static: see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.schemas import Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers. Nothing else is checked, so a store outage never restarts tasks."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Readiness}})
async def readyz(request: Request, response: Response) -> Readiness:
    """Ready when the model is loaded and the index caught up with the change log (as far as
    the store last said: an unreachable store does not make a replica unready)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None or runtime.state.snapshot is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(ready=False, reason="starting: model or index not loaded")
    state = runtime.state
    ready = state.caught_up
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        ready=ready,
        reason=None if ready else "catching up with the change log",
        model_version=runtime.towers.version,
        index_version=state.version,
        index_size=len(state.snapshot),
        lag=max(0, state.head - state.version),
        store_error=state.store_error,
        catalog_lost=state.catalog_lost,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    runtime.metrics.index_size.set(len(runtime.state.snapshot or ()))
    runtime.metrics.index_version.set(runtime.state.version)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

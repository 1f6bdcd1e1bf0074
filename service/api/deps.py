"""Dependencies the routes declare: the app_state, its parts, the key check per scope."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.errors import unavailable
from service.api.state import AppState
from service.recommender import Recommender
from service.store import Store

bearer = HTTPBearer(auto_error=False, description="An API key from MOVIE_RECS_API_KEYS.")

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
# pool, a hop that cost more than the whole recommendation (measured: 16 hops, ~2.5 ms a request).


async def get_app_state(request: Request) -> AppState:
    return request.app.state.app_state  # type: ignore[no-any-return]


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_store(app_state: AppStateDep) -> Store:
    return app_state.store


async def get_recommender(app_state: AppStateDep) -> Recommender:
    return app_state.recommender


StoreDep = Annotated[Store, Depends(get_store)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]


def require(scope: str) -> Any:
    """A dependency: a configured key with `scope` (or `admin`), within its rate limit.

    401 without a valid key, 403 when the key lacks the scope, 429 + Retry-After past its rate.
    The key's name (never the key) goes to the request log and the per-key metrics."""

    async def check(
        request: Request,
        app_state: AppStateDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        access, metrics = app_state.access, app_state.metrics
        if access.open:
            return
        if credentials is None:
            metrics.auth_failures.labels("missing").inc()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = access.keys.find(credentials.credentials)
        if key is None:
            metrics.auth_failures.labels("invalid").inc()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.api_key = key.name
        if not key.allows(scope):
            metrics.key_refusals.labels(key.name, "scope").inc()
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"API key {key.name!r} lacks the {scope!r} scope"
            )
        wait = access.keys.wait(key)
        if wait > 0:
            metrics.key_refusals.labels(key.name, "rate").inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"API key {key.name!r} is over its rate limit; retry after the Retry-After seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        metrics.key_requests.labels(key.name).inc()

    return Depends(check)


async def require_index_version(app_state: AppState, min_index_version: int | None) -> None:
    """Read-your-writes across replicas: wait (bounded) until this replica has applied
    `min_index_version`, else 503 (retry). A version the store itself has not reached can only
    come from a write not made yet: 409 at once, with the versions, rather than a wait."""
    index = app_state.index
    if min_index_version is None or index.index_version >= min_index_version:
        return
    # Everything from here only waits (on the store, then on the refresher): outside the
    # in-flight count, so clients asking far ahead cannot take ordinary requests' slots.
    with app_state.admission.parked() as admitted:
        if not admitted:
            raise unavailable(
                f"{app_state.admission.max_waiting} requests already wait for an index "
                "version; retry shortly"
            )
        if min_index_version > index.head:  # the refresher's last look may be stale
            head = await app_state.store.head_seq()
            if min_index_version > head:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"min_index_version {min_index_version} is beyond the newest index version "
                    f"{head}: pass a version a write returned (this replica has applied "
                    f"{index.index_version})",
                )
        reached = await index.wait_for(min_index_version, app_state.settings.freshness_wait_seconds)
    if not reached:
        raise unavailable(
            f"this replica has applied index version {index.index_version}, behind the "
            f"requested {min_index_version}; retry shortly"
        )

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
    """Read-your-writes across replicas: 503 (retry) when this replica is still behind."""
    if min_index_version is None or app_state.index.index_version >= min_index_version:
        return
    if not await app_state.wait_for_seq(min_index_version):
        raise unavailable(
            f"this replica has applied index version {app_state.index.index_version}, behind the "
            f"requested {min_index_version}; retry shortly"
        )

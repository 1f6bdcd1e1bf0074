"""Dependencies the routes declare: the app_state, its parts, and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

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


async def require_api_key(
    app_state: AppStateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Auth is off only when no key is configured (the local demo; startup says so loudly)."""
    keys = app_state.settings.api_keys
    if not keys:
        return
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    if not any(hmac.compare_digest(given, k.get_secret_value().encode()) for k in keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )


async def require_index_version(app_state: AppState, min_index_version: int | None) -> None:
    """Read-your-writes across replicas: 503 (retry) when this replica is still behind."""
    if min_index_version is None or app_state.index.index_version >= min_index_version:
        return
    if not await app_state.wait_for_seq(min_index_version):
        raise unavailable(
            f"this replica has applied index version {app_state.index.index_version}, behind the "
            f"requested {min_index_version}; retry shortly"
        )

"""How the API fails: the error bodies in OpenAPI, the exception handlers, and Retry-After.

Every 503 this service sends (store down, replica behind, overload, title index building)
carries the same `Retry-After`, from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.schemas import ErrorBody
from service.store import InvalidRecord, StoreError

RETRY_AFTER_SECONDS = 1
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}

Responses = dict[int | str, dict[str, Any]]


def responses(*codes: int, described: Mapping[int, str] | None = None) -> Responses:
    """The OpenAPI error map of a route: `ErrorBody` for each code, and for each code of
    `described` with its description."""
    out: Responses = {code: {"model": ErrorBody} for code in codes}
    for code, description in (described or {}).items():
        out[code] = {"model": ErrorBody, "description": description}
    return out


# What every authenticated /v1 route can answer besides 200 and 422.
ERRORS = responses(
    400,
    401,
    413,
    described={
        403: "The API key lacks the scope this route needs.",
        429: "The API key is over its rate limit: retry after Retry-After.",
        503: "The store is unreachable, the replica is behind min_index_version, or it is "
        "overloaded: retry after Retry-After.",
    },
)
# The recommendation routes, which take min_index_version.
VERSIONED_ERRORS = {
    **ERRORS,
    **responses(
        described={409: "min_index_version is beyond any version the store has handed out."}
    ),
}


def unavailable(detail: str) -> HTTPException:
    """A 503 the caller should retry shortly."""
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers=RETRY_AFTER)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    """Any store failure (refused, reset, timed out, no connection free): 503, retry soon."""
    request.app.state.metrics.store_unavailable.inc()
    return JSONResponse(
        {"detail": f"store unavailable: {exc}"}, status_code=503, headers=RETRY_AFTER
    )


async def _invalid_record(_: Request, exc: Exception) -> JSONResponse:
    """A record the store's rules refuse, shaped as every other 422 (the documented schema)."""
    error = {"loc": ["body"], "msg": str(exc), "type": "value_error"}
    return JSONResponse({"detail": [error]}, status_code=422)


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


def install_handlers(app: FastAPI) -> None:
    """Store failures → 503 + Retry-After; refused records and bad requests → 422."""
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(InvalidRecord, _invalid_record)
    app.add_exception_handler(RequestValidationError, _validation_error)

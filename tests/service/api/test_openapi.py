"""Schemathesis over the whole OpenAPI schema, in-process: no 5xx, no schema violation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.config import Settings
from service.towers import Towers

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(app_settings: Settings, tiny_towers: Towers):  # type: ignore[no-untyped-def]
    settings_ = Settings(
        **{
            **app_settings.model_dump(),
            "webhook_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "freshness_wait_seconds": 0.05,
        },
        _env_file=None,  # type: ignore[call-arg]
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_, tiny_towers))


def no_server_error(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """5xx is a bug, except the documented 503 of a replica behind `min_index_version`."""
    if response.status_code >= 500:
        behind = response.status_code == 503 and "behind the requested" in response.text
        assert behind, f"{response.status_code} {response.text[:300]}"


@pytest.mark.slow  # property-based: 25 generated requests per operation
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_schema(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        checks=[
            no_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )

"""Keys with names, scopes and a rate limit; a service that will not start open by accident."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.access import AccessConfigError, parse_keys
from service.api.app import create_app
from service.config import Settings
from service.ingest.webhook import BadWebhookSecret
from tests.support.service import MakeClient

READER = "reader-secret-0123456789"
WRITER = "writer-secret-0123456789"
PEOPLE = "people-secret-0123456789"
ROOT = "root-secret-0123456789ab"
KEYS = [
    f"web:read:{READER}",
    f"tracker:events:{WRITER}",
    f"support:users:{PEOPLE}",
    f"ops:admin:{ROOT}",
]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def keyed(make_client: MakeClient) -> TestClient:
    return make_client(api_keys=KEYS, auth_disabled=False)


def test_each_scope_opens_its_routes_and_no_other(keyed: TestClient) -> None:
    recs, history = "/v1/users/1/recommendations", "/v1/users/1/events"
    event = {"movie_id": "1", "kind": "watch"}
    assert keyed.get(recs, headers=bearer(READER)).status_code == 200
    assert keyed.get("/v1/movies?q=toy", headers=bearer(READER)).status_code == 200
    refused = keyed.post("/v1/users/77/events", json=event, headers=bearer(READER))
    assert refused.status_code == 403 and "'web' lacks the 'events' scope" in refused.text
    assert keyed.get(history, headers=bearer(READER)).status_code == 403
    assert keyed.get("/v1/users", headers=bearer(READER)).status_code == 403

    assert keyed.post("/v1/users/77/events", json=event, headers=bearer(WRITER)).status_code == 202
    assert keyed.get(recs, headers=bearer(WRITER)).status_code == 403
    assert keyed.get(history, headers=bearer(WRITER)).status_code == 403

    assert keyed.get(history, headers=bearer(PEOPLE)).status_code == 200
    assert keyed.get(recs, headers=bearer(PEOPLE)).status_code == 403

    for method, path in (("GET", recs), ("GET", history), ("GET", "/v1/users")):
        assert keyed.request(method, path, headers=bearer(ROOT)).status_code == 200
    assert keyed.post("/v1/users/78/events", json=event, headers=bearer(ROOT)).status_code == 202


def test_a_bare_secret_keeps_full_access(make_client: MakeClient) -> None:
    """The format before scopes: an upgrade must not lock its holder out."""
    client = make_client(api_keys=[READER], auth_disabled=False)
    assert client.get("/v1/users/1/recommendations", headers=bearer(READER)).status_code == 200
    assert client.get("/v1/users/1/events", headers=bearer(READER)).status_code == 200


def test_over_its_rate_a_key_gets_429_and_the_others_do_not(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS, auth_disabled=False, key_burst=3, key_rate_per_second=0.01)
    url = "/v1/movies/1"
    assert [client.get(url, headers=bearer(READER)).status_code for _ in range(3)] == [200] * 3
    limited = client.get(url, headers=bearer(READER))
    assert limited.status_code == 429 and "'web' is over its rate limit" in limited.text
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get(url, headers=bearer(ROOT)).status_code == 200  # a bucket per key
    metrics = client.get("/metrics").text
    assert 'movie_recs_key_refusals_total{key="web",reason="rate"} 1.0' in metrics
    assert 'movie_recs_key_requests_total{key="web"} 3.0' in metrics


def test_the_log_and_metrics_name_the_key_never_the_secret(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="service.requests"):
        keyed.post("/v1/users/77/events", json={"movie_id": "1"}, headers=bearer(READER))
        keyed.get("/v1/movies/1", headers=bearer("not-a-key-0123456789"))
    lines = [r.getMessage() for r in caplog.records if r.name == "service.requests"]
    assert any('"status": 403' in line and '"key": "web"' in line for line in lines), lines
    assert any('"status": 401' in line and '"key": null' in line for line in lines), lines
    exposed = "\n".join(lines) + keyed.get("/metrics").text
    assert READER not in exposed and "not-a-key" not in exposed
    assert 'movie_recs_auth_failures_total{reason="invalid"} 1.0' in exposed


def test_https_answers_carry_hsts(keyed: TestClient) -> None:
    behind_tls = keyed.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in keyed.get("/healthz").headers


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("web:reed:" + READER, "unknown scope(s) reed"),
        ("web::" + READER, "no scope"),
        ("web:read:short", "shorter than 16"),
        (f"web:read:{READER},web:events:{WRITER}", "two keys are named 'web'"),
        (f"a:read:{READER},b:events:{READER}", "share a secret"),
        (":read:" + READER, "no valid name"),
    ],
)
def test_a_bad_key_configuration_is_refused_with_what_to_fix(config: str, says: str) -> None:
    with pytest.raises(AccessConfigError, match=re.escape(says)):
        parse_keys([SecretStr(part) for part in config.split(",")])


def test_an_app_without_keys_refuses_to_build_unless_auth_is_off(app_settings: Settings) -> None:
    closed = Settings(**{**app_settings.model_dump(), "auth_disabled": False}, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(AccessConfigError, match="MOVIE_RECS_AUTH_DISABLED=true"):
        create_app(closed)
    bad_secret = Settings(
        **{**app_settings.model_dump(), "webhook_secrets": ["whsec_"]}, _env_file=None
    )  # type: ignore[call-arg]
    with pytest.raises(BadWebhookSecret, match="secret #1 is empty or not base64"):
        create_app(bad_secret)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no API key configured"),
        ({"MOVIE_RECS_API_KEYS": " , ,"}, "no API key configured"),
        (
            {"MOVIE_RECS_API_KEYS": f"web:read:{READER}", "MOVIE_RECS_WEBHOOK_SECRETS": "whsec_"},
            "secret #1 is empty",
        ),
    ],
)
def test_serve_fails_closed_with_one_line(env: dict[str, str], says: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOVIE_RECS_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "movie-recs"), "serve", "--port", "1"],
        env={**clean, **env, "COLUMNS": "200"},
        cwd=tmp_path,  # no .env file here
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr

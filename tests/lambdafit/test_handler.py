"""The Lambda-style handler on a copy of the seeded MovieLens store and the tiny real model.

What a user of a Lambda deployment would notice: the first call is slow and the next ones fast,
the answers are the API's own, and a catalog change stays invisible to a warm instance.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lambdafit import handler as lambda_handler
from lambdafit.handler import current_instance, handler, reload_state
from service.store import Event, Movie, Upsert, open_store

NEW = Movie("900001", "The Recommender", ("Sci-Fi",), 2026)


def event(user_id: str, k: object = "5") -> dict[str, Any]:
    return {"pathParameters": {"user_id": user_id}, "queryStringParameters": {"k": k}}


@pytest.fixture
def lambda_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_sqlite: Path, tiny_model_dir: Path
) -> Iterator[str]:
    """The handler's configuration, through the same MOVIE_RECS_* variables as the service."""
    db = tmp_path / "lambda.db"
    shutil.copy(seeded_sqlite, db)
    url = f"sqlite:///{db}"
    monkeypatch.setenv("MOVIE_RECS_STORE_URL", url)
    monkeypatch.setenv("MOVIE_RECS_ARTIFACTS_DIR", str(tiny_model_dir))
    monkeypatch.setenv("MOVIE_RECS_MODEL_VERSION", "latest")
    lambda_handler.discard_instance()
    yield url
    lambda_handler.discard_instance()


def test_importing_the_handler_loads_no_web_framework() -> None:
    """The "import handler" phase lambda-fit times is what a function would import: the
    recommender, store and towers, not the FastAPI app and its routers."""
    web = (
        "fastapi",
        "starlette",
        "uvicorn",
        "service.api.app",
        "service.api.routes",
        "service.api.deps",
    )
    probe = f"import sys, lambdafit.handler; print([m for m in {web!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_a_cold_start_never_imports_tensorflow(lambda_store: str) -> None:
    """The cold start lambda-fit times is a TensorFlow-free replica's (issue 27): a fresh
    process answers its first event with neither TensorFlow nor Keras imported."""
    probe = (
        "import json, sys; from lambdafit.handler import handler; "
        "answer = handler({'pathParameters': {'user_id': '1'}}, None); "
        "print(json.dumps([answer['statusCode'], "
        "[m for m in ('tensorflow', 'keras') if m in sys.modules]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [200, []]


def test_cold_start_loads_everything_once_then_warm_calls_reuse_it(lambda_store: str) -> None:
    first = handler(event("1"), None)
    instance = current_instance()

    assert first["statusCode"] == 200 and first["headers"]["x-cold-start"] == "true"
    body = json.loads(first["body"])
    assert body["strategy"] == "personalized" and len(body["items"]) == 5
    assert body["index_version"] == 9742
    assert instance is not None
    assert set(instance.timeline) == {
        "model load", "state load", "index build", "first answer",
    }  # fmt: skip

    loaded, timeline = instance.replica.refresher.live, dict(instance.timeline)
    second = handler(event("1"), None)
    assert second["statusCode"] == 200 and second["headers"]["x-cold-start"] == "false"
    assert json.loads(second["body"]) == body
    assert current_instance() is instance and instance.invocations == 2
    # reused, not reloaded: the same index object, no new cold-start phase
    assert instance.replica.refresher.live is loaded and instance.timeline == timeline


def test_answers_are_the_apis_own(lambda_store: str, client: TestClient) -> None:
    from_lambda = json.loads(handler(event("1", "8"), None)["body"])
    from_api = client.get("/v1/users/1/recommendations", params={"k": 8}).json()
    # The API records each list it serves (an exposure, for attribution) and names it; the
    # Lambda-style handler measures serving only and records none.
    assert isinstance(from_api.pop("recommendation_id"), str)
    assert from_lambda.pop("recommendation_id") is None
    assert from_lambda == from_api


def test_a_warm_instance_does_not_see_a_catalog_change(lambda_store: str) -> None:
    cold = handler(event("1"), None)
    version = cold["headers"]["x-index-version"]

    async def publish_and_watch() -> None:
        store = await open_store(lambda_store)
        try:
            await store.apply_changes([Upsert(NEW)])
            await store.add_events("newcomer", [Event(NEW.id, "watch", time.time())])
        finally:
            await store.close()

    asyncio.run(publish_and_watch())

    stale = handler(event("newcomer"), None)
    assert stale["headers"]["x-index-version"] == version
    assert json.loads(stale["body"])["strategy"] == "popular"  # its only movie is unknown here
    assert NEW.id not in (current_instance().replica.refresher.live or ())  # type: ignore[union-attr]

    assert reload_state() > 0  # what the function would have to do, in every instance
    fresh = handler(event("newcomer", "3"), None)
    body = json.loads(fresh["body"])
    assert int(fresh["headers"]["x-index-version"]) > int(version)
    assert body["strategy"] == "personalized" and body["history_length"] == 1
    assert all(item["because"]["movie_id"] == NEW.id for item in body["items"])


def test_bad_events_get_a_400_with_the_reason(lambda_store: str) -> None:
    cases: list[tuple[object, str]] = [
        ({"pathParameters": {}}, "user_id"),
        ({"pathParameters": {"user_id": "x" * 129}}, "user_id"),
        (event("1", "many"), "integer"),
        (event("1", "0"), "between 1 and 100"),
        (event("1", "101"), "between 1 and 100"),
        (event("1", None), "integer"),
        ("not an event", "object"),
    ]
    for bad, reason in cases:
        response = handler(bad, None)  # type: ignore[arg-type]
        assert response["statusCode"] == 400, bad
        assert reason in json.loads(response["body"])["detail"], bad
    assert handler({"pathParameters": {"user_id": "1"}}, None)["statusCode"] == 200  # k: 10

"""Hostile input through the whole ASGI stack: a 4xx with a message, nothing stored, never 5xx.

In-process (TestClient) on a copy of the seeded SQLite store, so Hypothesis can send hundreds
of bodies in seconds; the same middleware and routes run under uvicorn (tests/service/test_faults).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.app import create_app
from service.config import Settings
from service.ingest.webhook_signer import post_webhook
from tests.support.service import SECRET, URL, signed

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, seeded_sqlite: Path, tiny_model_dir: Path
) -> Iterator[TestClient]:
    """One app for the module (each test uses its own ids): startup costs a second or two."""
    db = tmp_path_factory.mktemp("bad-input") / "store.db"
    shutil.copy(seeded_sqlite, db)
    settings = Settings(
        store_url=f"sqlite:///{db}",
        artifacts_dir=tiny_model_dir,
        webhook_secrets=[SECRET],  # type: ignore[list-item]
        auth_disabled=True,
        _env_file=None,  # type: ignore[call-arg]
    )
    with TestClient(create_app(settings)) as client:
        yield client


def head(client: TestClient) -> int:
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    return int(client.portal.call(store.head_seq))


def history_of(client: TestClient, user: str) -> list[object]:
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    return list(client.portal.call(store.recent_events, user))


def post_json(client: TestClient, url: str, text: str) -> object:
    return client.post(url, content=text, headers={"content-type": "application/json"})


def deliver_raw(client: TestClient, text: str, msg_id: str) -> object:
    """A validly signed delivery of exactly `text` (which need not be valid JSON)."""
    return post_webhook("", SECRET, text.encode(), msg_id=msg_id, client=client)


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("/v1/recommendations", '{"history": [{"movie_id": "1", "kind": "rate", "rating": %s}]}'),
        ("/v1/recommendations", '{"history": [], "extra": %s}'),
        ("/v1/users/nan/events", '{"movie_id": "1", "timestamp": %s}'),
        ("/v1/users/nan/events", '{"events": [{"movie_id": "1", "kind": "rate", "rating": %s}]}'),
    ],
)
def test_non_finite_numbers_anywhere_are_400(
    client: TestClient, url: str, template: str, number: str
) -> None:
    response = post_json(client, url, template % number)
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert "finite" in response.json()["detail"]  # type: ignore[attr-defined]
    assert history_of(client, "nan") == []


def test_deep_nesting_is_400_before_any_model_sees_it(client: TestClient) -> None:
    for depth in (40, 100_000):
        text = '{"history": [], "x": ' + "[" * depth + "]" * depth + "}"
        response = post_json(client, "/v1/recommendations", text)
        assert response.status_code in (400, 413), response.text  # type: ignore[attr-defined]
    text = '{"history": [], "x": ' + "[" * 40 + "]" * 40 + "}"
    response = post_json(client, "/v1/recommendations", text)
    assert "nested deeper" in response.json()["detail"]  # type: ignore[attr-defined]


def test_a_signed_webhook_nested_deeply_is_400_not_a_retry_loop(client: TestClient) -> None:
    depth = 50_000  # 100 KB: under the webhook's body limit
    before = head(client)
    text = '{"type": "movie.upserted", "data": ' + "[" * depth + "]" * depth + "}"
    response = deliver_raw(client, text, "deep")
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert "nested deeper" in response.json()["detail"]  # type: ignore[attr-defined]
    assert head(client) == before


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("title", "Evil\x00Title", "U+0000"),
        ("title", "Two\r\nLines", "U+000D"),
        ("title", "Nice \u202egnp.exe", "U+202E"),
        ("title", "\u2066isolated\u2069", "U+2066"),
        ("title", "x" * 1001, "1000"),
        ("title", "   ", "non-empty"),
        ("genres", ["Drama,Comedy"], "','"),
        ("genres", ["Dra\x1bma"], "U+001B"),
        ("genres", ["x" * 101], "100"),
        ("tags", ["bad\ntag"], "U+000A"),
        ("tags", ["\u202dtag"], "U+202D"),
    ],
)
def test_catalog_text_with_control_bidi_or_separators_is_422_and_not_stored(
    client: TestClient, field: str, value: object, problem: str
) -> None:
    before = head(client)
    data = {"id": "990001", "title": "Fine", "genres": ["Drama"], field: value}
    body, headers = signed({"type": "movie.upserted", "data": data}, msg_id=f"text-{field}")
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"]
    assert head(client) == before
    assert client.get("/v1/movies/990001").status_code == 404


def test_catalog_text_is_trimmed(client: TestClient) -> None:
    data = {"id": "990002", "title": "  Padded  ", "genres": [" Drama "], "tags": ["x "]}
    body, headers = signed({"type": "movie.upserted", "data": data}, msg_id="trim")
    assert client.post(URL, content=body, headers=headers).status_code == 202
    movie = client.get("/v1/movies/990002").json()
    assert (movie["title"], movie["genres"], movie["tags"]) == ("Padded", ["Drama"], ["x"])


def test_an_event_far_in_the_future_is_422_and_not_stored(client: TestClient) -> None:
    ahead = time.time() + 2 * 3600
    response = client.post("/v1/users/future/events", json={"movie_id": "1", "timestamp": ahead})
    assert response.status_code == 422, response.text
    assert "ahead of the server's clock" in response.text
    assert history_of(client, "future") == []
    soon = time.time() + 60  # a client clock a minute fast is fine
    ok = client.post("/v1/users/future/events", json={"movie_id": "1", "timestamp": soon})
    assert ok.status_code == 202


def test_a_reused_webhook_id_with_another_body_is_409_the_exact_replay_200(
    client: TestClient,
) -> None:
    first = {"type": "movie.upserted", "data": {"id": "990003", "title": "One"}}
    body, headers = signed(first, msg_id="same-id")
    assert client.post(URL, content=body, headers=headers).status_code == 202
    before = head(client)
    replay = client.post(URL, content=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True

    other = {"type": "movie.upserted", "data": {"id": "990003", "title": "Two"}}
    body2, headers2 = signed(other, msg_id="same-id")
    conflict = client.post(URL, content=body2, headers=headers2)
    assert conflict.status_code == 409, conflict.text
    assert "different body" in conflict.json()["detail"]
    assert head(client) == before
    assert client.get("/v1/movies/990003").json()["title"] == "One"


def test_no_slash_redirect_echoes_a_forged_host(client: TestClient) -> None:
    response = client.get("/v1/movies/1/", headers={"host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404
    assert "evil.example" not in response.headers.get("location", "")


# --- fuzz ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1", "318", "watch", "rate", "movie.upserted", "movie.deleted", "Drama"]),
)
keys = st.sampled_from(
    ["history", "movie_id", "kind", "rating", "timestamp", "k", "genres", "year_min",
     "year_max", "min_index_version", "exclude_seen", "events", "type", "data", "id", "title",
     "tags", "year", "x"]
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


def dumps(document: object) -> str:
    """Python's json writes NaN and Infinity as bare words: exactly the hostile input."""
    return json.dumps(document)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents, route=st.sampled_from(["recs", "events", "webhook"]))
def test_fuzzed_json_bodies_never_get_a_5xx(
    client: TestClient, document: object, route: str
) -> None:
    text = dumps(document)
    if route == "webhook":
        response = deliver_raw(client, text, f"fuzz-{time.monotonic_ns()}")
    else:
        url = "/v1/recommendations" if route == "recs" else "/v1/users/fuzz/events"
        response = post_json(client, url, text)
    assert response.status_code < 500, (text, response.text)  # type: ignore[attr-defined]
    response.json()  # type: ignore[attr-defined]  # every answer, 4xx included, is JSON

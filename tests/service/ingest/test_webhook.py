"""The catalog webhook in-process: signatures, validation, idempotency, and the refresher."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from service.ingest.webhook_signer import signed_headers
from tests.support.service import SECRET, URL, MakeClient, signed

NEXT_SECRET = "whsec_" + "c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="
NEW = {"id": "900001", "title": "The Recommender", "genres": ["Sci-Fi"], "year": 2026}


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client(webhook_secrets=[SECRET, NEXT_SECRET])


def head(client: TestClient) -> int:
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    return int(client.portal.call(store.head_seq))


def test_the_specifications_published_example_signs_as_published() -> None:
    # https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    signature = Webhook(SECRET).sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.fromtimestamp(1614265330, tz=UTC),
        '{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_upsert_becomes_recommendable_and_delete_removes_it(client: TestClient) -> None:
    body, headers = signed({"type": "movie.upserted", "data": NEW})
    accepted = client.post(URL, content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    seq = accepted.json()["last_seq"]
    assert accepted.json()["applied"] == 1 and seq == 9743

    history = {"history": [{"movie_id": "900001"}], "k": 3, "exclude_seen": False}
    recs = client.post("/v1/recommendations", json={**history, "min_index_version": seq}).json()
    assert recs["index_version"] >= seq
    assert recs["items"][0]["movie_id"] == "900001"  # its own vector is nearest to itself
    assert client.get("/v1/movies/900001").json()["indexed"]

    body, headers = signed({"type": "movie.deleted", "data": {"id": "900001"}}, msg_id="msg_2")
    gone = client.post(URL, content=body, headers=headers).json()["last_seq"]
    similar = client.get("/v1/movies/1/similar", params={"k": 100}).json()
    recs = client.post("/v1/recommendations", json={**history, "min_index_version": gone}).json()
    assert recs["strategy"] == "popular"  # its only history item no longer exists
    assert "900001" not in {i["movie_id"] for i in similar["items"] + recs["items"]}


def test_an_upsert_carries_its_imdb_and_tmdb_ids(client: TestClient) -> None:
    movie = {**NEW, "imdb_id": "0133093", "tmdb_id": "603"}
    body, headers = signed({"type": "movie.upserted", "data": movie})
    assert client.post(URL, content=body, headers=headers).status_code == 202
    stored = client.get("/v1/movies/900001").json()
    assert (stored["imdb_id"], stored["tmdb_id"]) == ("0133093", "603")

    body, headers = signed(
        {"type": "movie.upserted", "data": {**movie, "imdb_id": "tt0133093"}}, msg_id="msg_2"
    )
    refused = client.post(URL, content=body, headers=headers)
    assert refused.status_code == 422 and "imdb_id" in refused.json()["detail"]


def test_a_replayed_webhook_id_applies_nothing_twice(client: TestClient) -> None:
    body, headers = signed({"type": "movie.upserted", "data": NEW}, msg_id="msg_same")
    first = client.post(URL, content=body, headers=headers)
    again = client.post(URL, content=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["duplicate"] and again.json()["applied"] == 0
    assert again.json()["last_seq"] == first.json()["last_seq"] == head(client)


def test_a_rotated_secret_is_accepted(client: TestClient) -> None:
    body, headers = signed({"type": "movie.deleted", "data": {"id": "1"}}, secret=NEXT_SECRET)
    assert client.post(URL, content=body, headers=headers).status_code == 202


def test_a_batch_is_applied_in_order(client: TestClient) -> None:
    events = [
        {"type": "movie.upserted", "data": {**NEW, "id": "a1"}},
        {"type": "movie.upserted", "data": {**NEW, "id": "a2"}},
        {"type": "movie.deleted", "data": {"id": "a1"}},
    ]
    body, headers = signed({"events": events})
    response = client.post(URL, content=body, headers=headers).json()
    assert (response["events"], response["applied"]) == (3, 3)
    assert client.get("/v1/movies/a1").status_code == 404
    assert client.get("/v1/movies/a2").json()["title"] == "The Recommender"


def tamper(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"Recommender", b"Recommendex"), headers


def drop(name: str):  # type: ignore[no-untyped-def]
    def without(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {k: v for k, v in headers.items() if k != name}

    return without


Mutation = Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]


def replace(name: str, value: str) -> Mutation:
    def with_value(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {**headers, name: value}

    return with_value


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (tamper, 401, "no webhook-signature matches"),
        (drop("webhook-signature"), 400, "missing header(s): webhook-signature"),
        (drop("webhook-id"), 400, "missing header(s): webhook-id"),
        (replace("webhook-signature", "garbage"), 400, "malformed webhook-signature"),
        (replace("webhook-signature", "v1,AAAA"), 401, "no webhook-signature matches"),
        (replace("webhook-timestamp", "yesterday"), 400, "not a unix timestamp"),
        (replace("webhook-id", "x" * 300), 400, "longer than 256"),
    ],
)
def test_bad_signatures_are_precise_4xx_and_write_nothing(
    client: TestClient,
    mutate: Mutation,
    status: int,
    message: str,
) -> None:
    before = head(client)
    body, headers = mutate(*signed({"type": "movie.upserted", "data": NEW}))
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert head(client) == before


@pytest.mark.parametrize(("offset", "word"), [(-600, "old"), (600, "future")])
def test_old_and_future_timestamps_are_refused(client: TestClient, offset: int, word: str) -> None:
    body, headers = signed({"type": "movie.upserted", "data": NEW}, at=time.time() + offset)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 401 and word in response.json()["detail"]


def test_wrong_secret_is_refused(client: TestClient) -> None:
    body, headers = signed({"type": "movie.upserted", "data": NEW}, secret="whsec_d3Jvbmc=")
    assert client.post(URL, content=body, headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"type": "movie.renamed", "data": NEW}, 422, "invalid payload"),
        ({"type": "movie.upserted", "data": {**NEW, "title": ""}}, 422, "data.title"),
        ({"type": "movie.upserted", "data": {**NEW, "year": 99999}}, 422, "data.year"),
        (
            {"events": [{"type": "movie.upserted", "data": NEW}, {"type": "movie.deleted"}]},
            422,
            "events.1",
        ),
        ({"events": [{"type": "movie.deleted", "data": {"id": "1"}}] * 1001}, 413, "1000"),
        ([1, 2], 422, "invalid payload"),
    ],
)
def test_invalid_payloads_reject_the_whole_batch(
    client: TestClient, payload: object, status: int, message: str
) -> None:
    before = head(client)
    body, headers = signed(payload)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert head(client) == before
    assert client.get("/v1/movies/900001").status_code == 404


def test_signed_body_that_is_not_json_is_400(client: TestClient) -> None:
    headers = signed_headers(SECRET, b"not json", "msg_raw")
    response = client.post(URL, content=b"not json", headers=headers)
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]
    binary = client.post(URL, content=b"\xff\xfe", headers=headers)
    assert binary.status_code == 400 and "non-UTF-8" in binary.json()["detail"]


def test_oversize_body_is_413(client: TestClient) -> None:
    payload = {"type": "movie.upserted", "data": {**NEW, "title": "x" * (1024 * 1024)}}
    body, headers = signed(payload)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 413


def test_without_secrets_webhooks_are_disabled(make_client: MakeClient) -> None:
    client = make_client()
    body, headers = signed({"type": "movie.upserted", "data": NEW})
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 503 and "MOVIE_RECS_WEBHOOK_SECRETS" in response.json()["detail"]

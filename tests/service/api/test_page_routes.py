"""The read routes the page uses (search, a user's events, sample users, the live catalog) and
the page itself being off under `serve` unless a setting turns it on."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.support.service import SECRET, MakeClient, signed


def test_search_is_case_and_accent_insensitive_exact_titles_first(client: TestClient) -> None:
    body = client.get("/v1/movies", params={"q": "toy story"}).json()
    assert body["index_version"] == 9742
    first = body["items"][0]
    assert (first["movie_id"], first["title"], first["year"]) == ("1", "Toy Story", 1995)
    assert {"Toy Story 2", "Toy Story 3"} <= {i["title"] for i in body["items"]}
    for query in ("AMÉLIE", "amelie", "Amelie 2001"):
        items = client.get("/v1/movies", params={"q": query}).json()["items"]
        assert items[0]["movie_id"] == "4973", query  # Amelie (Fabuleux destin d'Amélie …)
    assert len(client.get("/v1/movies", params={"q": "toy", "limit": 2}).json()["items"]) == 2
    assert client.get("/v1/movies", params={"q": "qqqzzzxx"}).json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "x" * 101}, {"q": "toy", "limit": 0}, {"q": "toy", "limit": 51}],
)
def test_search_input_is_bounded(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/v1/movies", params=params)
    assert response.status_code == 422 and response.json()["detail"]


def test_user_events_come_newest_first_with_titles(client: TestClient) -> None:
    events = client.get("/v1/users/1/events", params={"limit": 5}).json()["items"]
    assert len(events) == 5
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert all(e["title"] and e["kind"] == "rate" and e["rating"] for e in events)

    posted = client.post("/v1/users/1/events", json={"movie_id": "1", "kind": "rate", "rating": 5})
    assert posted.status_code == 202
    newest = client.get("/v1/users/1/events", params={"limit": 1}).json()["items"]
    assert [(e["movie_id"], e["title"], e["year"], e["rating"]) for e in newest] == [
        ("1", "Toy Story", 1995, 5.0)
    ]
    assert client.get("/v1/users/nobody/events").json() == {"user_id": "nobody", "items": []}
    assert client.get("/v1/users/1/events", params={"limit": 201}).status_code == 422


def test_sample_users_spread_from_light_to_heavy_histories(client: TestClient) -> None:
    users = client.get("/v1/users", params={"limit": 6}).json()["users"]
    assert len(users) == 6
    counts = [u["events"] for u in users]
    assert counts == sorted(counts) and counts[0] < counts[-1] <= 1000  # kept a user
    assert client.get("/v1/users", params={"limit": 51}).status_code == 422


def test_movie_record_links_to_imdb_and_tmdb(client: TestClient) -> None:
    movie = client.get("/v1/movies/1").json()
    assert (movie["imdb_id"], movie["tmdb_id"]) == ("0114709", "862")


def test_catalog_shows_a_webhook_movie_once_indexed(make_client: MakeClient) -> None:
    client = make_client(webhook_secrets=[SECRET])
    status = client.get("/v1/catalog", params={"limit": 0}).json()
    assert status["index_version"] == status["index_size"] == 9742
    assert status["lag"] == 0 and status["caught_up"] and status["changes"] == []
    assert "Comedy" in status["genres"] and status["model_version"]
    newest = client.get("/v1/catalog").json()["changes"]  # default: the newest 10 applied
    assert [c["seq"] for c in newest] == list(range(9733, 9743))

    movie = {"id": "990001", "title": "Zéphyrine", "genres": ["Noir-ish"], "year": 2026}
    body, headers = signed({"type": "movie.upserted", "data": movie}, msg_id="msg_page")
    assert client.post("/v1/webhooks/catalog", content=body, headers=headers).status_code == 202
    deadline = time.monotonic() + 10
    while (status := client.get("/v1/catalog", params={"after": 9742}).json())[
        "index_version"
    ] < 9743:
        assert time.monotonic() < deadline, "the refresher did not apply the webhook"
        time.sleep(0.05)
    [change] = status["changes"]
    assert (change["seq"], change["op"], change["movie_id"], change["title"]) == (
        9743,
        "upsert",
        "990001",
        "Zéphyrine",
    )
    assert change["indexed"] and status["index_size"] == 9743 and "Noir-ish" in status["genres"]
    assert client.get("/v1/movies", params={"q": "zephyrine"}).json()["items"][0]["year"] == 2026
    assert client.get("/v1/catalog", params={"after": 9743}).json()["changes"] == []
    assert client.get("/v1/catalog", params={"limit": 101}).status_code == 422


def test_new_routes_need_the_api_key_when_configured(make_client: MakeClient) -> None:
    client = make_client(api_keys=["page:read+users:k1-0123456789abcdef"])
    for path in ("/v1/movies?q=toy", "/v1/users", "/v1/users/1/events", "/v1/catalog"):
        assert client.get(path).status_code == 401, path
        bearer = {"Authorization": "Bearer k1-0123456789abcdef"}
        assert client.get(path, headers=bearer).status_code == 200


def test_the_page_is_off_unless_turned_on(make_client: MakeClient) -> None:
    off = make_client()
    assert off.get("/").status_code == 404
    assert off.get("/static/app.js").status_code == 404

    on = make_client(page=True)
    page = on.get("/")
    assert page.status_code == 200 and "<h1>movie-recs</h1>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = on.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/" not in on.get("/openapi.json").json()["paths"]

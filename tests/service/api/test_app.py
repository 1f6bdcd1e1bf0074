"""The API through TestClient (lifespan runs) on a real tiny model and the bundled catalog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.service import MakeClient

USER = "1"  # has 232 ratings in ml-latest-small, all kept


def history_of(client: TestClient, user: str) -> set[str]:
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    return {e.movie_id for e in client.portal.call(store.recent_events, user)}


def test_user_recommendations_are_personalized_and_explained(client: TestClient) -> None:
    body = client.get(f"/v1/users/{USER}/recommendations", params={"k": 7}).json()

    assert body["strategy"] == "personalized"
    assert body["history_length"] == 50  # L of the model
    assert body["user_id"] == USER and body["model_version"] and body["index_version"] == 9742
    items = body["items"]
    assert len(items) == 7 and len({i["movie_id"] for i in items}) == 7
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    seen = history_of(client, USER)
    assert not seen & {i["movie_id"] for i in items}  # exclude_seen defaults to true
    assert all(i["because"]["movie_id"] in seen for i in items)


def test_exclude_seen_false_can_return_seen_movies(client: TestClient) -> None:
    body = client.get(
        f"/v1/users/{USER}/recommendations", params={"k": 100, "exclude_seen": "false"}
    ).json()
    assert history_of(client, USER) & {i["movie_id"] for i in body["items"]}


def test_filters_hold(client: TestClient) -> None:
    params = {"k": 20, "genres": "Horror,Documentary", "year_min": 1990, "year_max": 1999}
    items = client.get(f"/v1/users/{USER}/recommendations", params=params).json()["items"]
    assert len(items) == 20
    for item in items:
        assert {"Horror", "Documentary"} & set(item["genres"])
        assert 1990 <= item["year"] <= 1999


def test_unknown_user_gets_popular(client: TestClient) -> None:
    body = client.get("/v1/users/nobody-yet/recommendations", params={"k": 5}).json()
    assert body["strategy"] == "popular" and body["history_length"] == 0
    assert len(body["items"]) == 5 and all(i["because"] is None for i in body["items"])


def test_an_event_changes_the_next_recommendation(client: TestClient) -> None:
    user = "new-user"
    before = client.get(f"/v1/users/{user}/recommendations").json()
    accepted = client.post(f"/v1/users/{user}/events", json={"movie_id": "1", "kind": "watch"})
    after = client.get(f"/v1/users/{user}/recommendations").json()

    assert accepted.status_code == 202 and accepted.json()["accepted"] == 1
    assert before["strategy"] == "popular"
    assert after["strategy"] == "personalized" and after["history_length"] == 1
    assert all(i["because"]["movie_id"] == "1" for i in after["items"])
    assert "1" not in {i["movie_id"] for i in after["items"]}


def test_event_batch_with_an_unknown_movie_stores_nothing(client: TestClient) -> None:
    batch = {"events": [{"movie_id": "1"}, {"movie_id": "no-such-movie"}]}
    response = client.post("/v1/users/u9/events", json=batch)
    assert response.status_code == 404
    assert "no-such-movie" in response.json()["detail"]
    assert history_of(client, "u9") == set()


@pytest.mark.parametrize(
    "event",
    [
        {"movie_id": "1", "kind": "rate"},  # no rating
        {"movie_id": "1", "kind": "like"},
        {"movie_id": "1", "kind": "rate", "rating": 7},
        {"movie": "1"},
    ],
)
def test_bad_events_are_422(client: TestClient, event: dict[str, object]) -> None:
    assert client.post("/v1/users/u1/events", json=event).status_code == 422


def test_anonymous_session(client: TestClient) -> None:
    history = [{"movie_id": "260"}, {"movie_id": "1196", "kind": "rate", "rating": 5}]
    body = client.post("/v1/recommendations", json={"history": history, "k": 5}).json()
    assert body["strategy"] == "personalized" and body["history_length"] == 2
    assert body["user_id"] is None
    assert {i["because"]["movie_id"] for i in body["items"]} <= {"260", "1196"}
    assert not {"260", "1196"} & {i["movie_id"] for i in body["items"]}


def test_movie_and_similar(client: TestClient) -> None:
    movie = client.get("/v1/movies/1").json()
    assert movie["title"] == "Toy Story" and movie["year"] == 1995 and movie["indexed"]
    similar = client.get("/v1/movies/1/similar", params={"k": 4}).json()
    assert len(similar["items"]) == 4 and "1" not in {i["movie_id"] for i in similar["items"]}
    assert client.get("/v1/movies/nope").status_code == 404
    assert client.get("/v1/movies/nope/similar").status_code == 404


@pytest.mark.parametrize("k", [0, 101, "ten"])
def test_k_is_bounded(client: TestClient, k: object) -> None:
    assert client.get(f"/v1/users/{USER}/recommendations", params={"k": k}).status_code == 422


def test_history_is_bounded(client: TestClient) -> None:
    history = [{"movie_id": "1"}] * 201
    response = client.post("/v1/recommendations", json={"history": history})
    assert response.status_code == 422


def test_body_limit_is_counted_on_the_stream(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked upload
        for _ in range(100):
            yield b" " * 1024

    response = client.post(
        "/v1/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "over 65536 bytes" in response.json()["detail"]


def test_year_range_inverted_is_400(client: TestClient) -> None:
    response = client.get(
        f"/v1/users/{USER}/recommendations", params={"year_min": 2000, "year_max": 1990}
    )
    assert response.status_code == 400 and "year_min" in response.json()["detail"]


def test_api_keys_are_enforced_when_configured(make_client: MakeClient) -> None:
    client = make_client(api_keys=["old:read:k-old-0123456789abc", "new:read:k-new-0123456789abc"])
    url = f"/v1/users/{USER}/recommendations"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get(url, headers={"Authorization": "Bearer k-new-0123456789abc"})
    assert ok.status_code == 200
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["index_size"] == 9742 and ready["lag"] == 0
    client.get(f"/v1/users/{USER}/recommendations")
    text = client.get("/metrics").text
    assert 'route="/v1/users/{user_id}/recommendations"' in text
    assert "movie_recs_index_size 9742.0" in text
    assert "movie_recs_model_info{version=" in text


def test_ratings_weigh_the_history(client: TestClient) -> None:
    """The service passes rating weights to the user tower: loving one movie and barely
    liking the other recommends differently from the reverse."""

    def recs(first: float, second: float) -> list[str]:
        history = [
            {"movie_id": "1", "kind": "rate", "rating": first},
            {"movie_id": "2571", "kind": "rate", "rating": second},
        ]
        body = client.post("/v1/recommendations", json={"history": history, "k": 10}).json()
        return [i["movie_id"] for i in body["items"]]

    assert recs(5.0, 0.5) != recs(0.5, 5.0)


def test_metrics_report_the_stores_memory(client: TestClient) -> None:
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("movie_recs_store_memory_bytes{"))
    assert 'part="catalog"' in line and float(line.split()[-1]) > 1_000_000  # the SQLite file

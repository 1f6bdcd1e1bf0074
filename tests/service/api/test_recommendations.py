"""The recommendation routes' taste options over HTTP (TestClient, lifespan run) on the tiny
trained model and the bundled catalog: the `dislike` event, reasons, diversity, the genre cap."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.service import MakeClient

USER = "1"


def ids(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [i["movie_id"] for i in body["items"]]


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "high"])
def test_a_diversity_outside_0_to_1_is_422_on_both_routes(client: TestClient, value: str) -> None:
    response = client.get(f"/v1/users/{USER}/recommendations", params={"diversity": value})
    assert response.status_code == 422 and "diversity" in response.text
    number = {"-0.1": -0.1, "1.5": 1.5}.get(value)
    if number is not None:
        response = client.post("/v1/recommendations", json={"diversity": number})
        assert response.status_code == 422 and "diversity" in response.text


def test_diversity_0_is_the_default_list_and_more_changes_it(client: TestClient) -> None:
    url = f"/v1/users/{USER}/recommendations"
    plain = client.get(url).json()
    assert ids(client.get(url, params={"diversity": 0}).json()) == ids(plain)
    varied = client.get(url, params={"diversity": 0.6}).json()
    assert len(varied["items"]) == 10 and ids(varied) != ids(plain)
    capped = client.get(url, params={"max_per_genre": 2}).json()
    for genre in {g for i in capped["items"] for g in i["genres"]}:
        assert sum(genre in i["genres"] for i in capped["items"]) <= 2
    assert client.get(url, params={"max_per_genre": 0}).status_code == 422


def test_a_dislike_event_is_stored_shown_and_pushes_away(make_client: MakeClient) -> None:
    client = make_client()
    user = "dislikes-things"
    popular = client.get(f"/v1/users/{user}/recommendations").json()
    top = popular["items"][0]
    accepted = client.post(f"/v1/users/{user}/events", json={"movie_id": "2985", "kind": "dislike"})
    assert accepted.status_code == 202
    events = client.get(f"/v1/users/{user}/events").json()["items"]
    assert [(e["movie_id"], e["kind"], e["rating"]) for e in events] == [("2985", "dislike", None)]
    after = client.get(f"/v1/users/{user}/recommendations").json()
    assert after["strategy"] == "popular" and "2985" not in ids(after)
    assert all(i["because"] is None and i["reason"] == "popular" for i in after["items"])
    assert top["reason"] == "popular"
    bad = client.post(
        f"/v1/users/{user}/events", json={"movie_id": "1", "kind": "dislike", "rating": 1.0}
    )
    assert bad.status_code == 422 and "carries no rating" in bad.text


def test_an_anonymous_history_of_lukewarm_ratings_gives_no_reason_to_reject(
    client: TestClient,
) -> None:
    history = [{"movie_id": "2985", "kind": "rate", "rating": 2.5}]
    body = client.post("/v1/recommendations", json={"history": history, "k": 5}).json()
    assert body["strategy"] == "personalized"
    assert [(i["because"], i["reason"]) for i in body["items"]] == [(None, "people_like_you")] * 5
    liked = [{"movie_id": "1", "kind": "watch"}, {"movie_id": "2985", "kind": "dislike"}]
    body = client.post("/v1/recommendations", json={"history": liked, "k": 5}).json()
    assert body["history_length"] == 1
    assert {i["because"]["movie_id"] for i in body["items"]} == {"1"}

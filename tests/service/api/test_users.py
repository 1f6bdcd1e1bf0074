"""DELETE /v1/users/{id}: a user is forgotten at once, and the answer does not say whether
there was anything to forget."""

from __future__ import annotations

from fastapi.testclient import TestClient


def events_of(client: TestClient, user_id: str) -> list[object]:
    items: list[object] = client.get(f"/v1/users/{user_id}/events").json()["items"]
    return items


def test_deleting_a_user_forgets_their_history_and_no_one_elses(client: TestClient) -> None:
    assert events_of(client, "1") and events_of(client, "2")  # MovieLens users

    response = client.delete("/v1/users/1")

    assert response.status_code == 204 and response.content == b""
    assert events_of(client, "1") == []
    assert events_of(client, "2")
    sampled = client.get("/v1/users", params={"limit": 50}).json()["users"]
    assert "1" not in {user["user_id"] for user in sampled}


def test_deleting_is_204_whether_or_not_the_user_existed(client: TestClient) -> None:
    assert client.delete("/v1/users/1").status_code == 204
    assert client.delete("/v1/users/1").status_code == 204
    assert client.delete("/v1/users/never-seen").status_code == 204


def test_new_events_after_a_delete_start_a_new_history(client: TestClient) -> None:
    client.delete("/v1/users/1")
    posted = client.post("/v1/users/1/events", json={"movie_id": "1", "kind": "watch"})
    assert posted.status_code == 202
    assert [event["movie_id"] for event in client.get("/v1/users/1/events").json()["items"]] == [
        "1"
    ]


def test_an_invalid_user_id_is_refused(client: TestClient) -> None:
    response = client.delete("/v1/users/a|b")
    assert response.status_code == 422 and response.json()["detail"]

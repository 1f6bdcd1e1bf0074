"""Every list shown is recorded as an exposure, and the events it leads to are attributed."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from service.experiments.exposures import ExposureRecorder
from service.store.records import Exposure
from tests.support.service import MakeClient

USER = "1"


def flush(client: TestClient) -> None:
    assert client.portal is not None
    recorder: ExposureRecorder = client.app.state.app_state.exposures  # type: ignore[attr-defined]
    client.portal.call(recorder.flush)


def shown_to(client: TestClient, subject: str) -> list[Exposure]:
    flush(client)
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    return client.portal.call(store.subject_exposures, subject)


def metric(client: TestClient, line: str) -> float:
    for row in client.get("/metrics").text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


def test_every_recommendation_response_is_recorded_as_shown(client: TestClient) -> None:
    user = client.get(f"/v1/users/{USER}/recommendations", params={"k": 5}).json()
    anonymous = client.post(
        "/v1/recommendations", json={"history": [{"movie_id": "1"}], "session_id": "s-1", "k": 3}
    ).json()
    similar = client.get("/v1/movies/1/similar", params={"k": 4, "user_id": USER}).json()
    nobody = client.post("/v1/recommendations", json={"history": []}).json()

    ids = [body["recommendation_id"] for body in (user, anonymous, similar, nobody)]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    assert user["experiment"] is None and user["variant"] is None
    to_user = shown_to(client, USER)
    assert [e.id for e in to_user] == [similar["recommendation_id"], user["recommendation_id"]]
    first = to_user[1]
    assert first.items == tuple(i["movie_id"] for i in user["items"])
    assert first.position(user["items"][2]["movie_id"]) == 3
    assert (first.surface, first.strategy, first.model_version) == (
        "user",
        "personalized",
        user["model_version"],
    )
    assert abs(first.at - time.time()) < 60
    assert [e.surface for e in shown_to(client, "s-1")] == ["anonymous"]
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(store.count_exposure_log) == 4  # the one without a subject too
    assert metric(client, 'movie_recs_exposures_total{outcome="recorded"}') == 4


def test_a_full_queue_drops_and_counts_without_failing_a_request(make_client: MakeClient) -> None:
    client = make_client(exposure_queue_size=2, exposure_flush_seconds=10)
    for _ in range(5):
        assert client.get(f"/v1/users/{USER}/recommendations", params={"k": 2}).status_code == 200
    assert len(shown_to(client, USER)) == 2
    assert metric(client, 'movie_recs_exposures_total{outcome="dropped"}') == 3


def events(client: TestClient, user: str, *events: dict[str, object]) -> int:
    answer = client.post(f"/v1/users/{user}/events", json={"events": list(events)})
    assert answer.status_code == 202, answer.text
    return int(answer.json()["attributed"])


def test_an_event_naming_its_list_is_attributed_once(client: TestClient) -> None:
    body = client.get("/v1/users/u-x/recommendations", params={"k": 5}).json()
    flush(client)
    rid, movie = body["recommendation_id"], body["items"][1]["movie_id"]
    not_shown = "1" if movie != "1" else "2"

    assert events(client, "u-x", {"movie_id": movie, "recommendation_id": rid}) == 1
    assert events(client, "u-x", {"movie_id": movie, "recommendation_id": rid}) == 0  # again
    assert events(client, "u-x", {"movie_id": not_shown, "recommendation_id": rid}) == 0
    assert events(client, "someone-else", {"movie_id": movie, "recommendation_id": rid}) == 0
    line = 'movie_recs_attributed_events_total{experiment="",how="explicit",variant=""}'
    assert metric(client, line) == 1


def test_an_event_without_an_id_goes_to_the_latest_list_that_showed_it(client: TestClient) -> None:
    first = client.get("/v1/users/u-y/recommendations", params={"k": 5}).json()
    flush(client)
    movie = first["items"][0]["movie_id"]
    second = client.get("/v1/movies/1/similar", params={"k": 20, "user_id": "u-y"}).json()
    flush(client)
    both = movie in {i["movie_id"] for i in second["items"]}
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None

    before = time.time() - 3600  # an event from before any list was shown
    assert events(client, "u-y", {"movie_id": movie, "timestamp": before}) == 0
    assert events(client, "u-y", {"movie_id": movie}) == 1
    latest = client.portal.call(store.subject_exposures, "u-y")[0 if both else 1]
    assert latest.id == (second if both else first)["recommendation_id"]
    assert events(client, "u-y", {"movie_id": movie, "kind": "rate", "rating": 4}) == 0  # counted


def test_events_outside_the_window_are_not_attributed(make_client: MakeClient) -> None:
    client = make_client(attribution_window_hours=0.0003)  # about 1 s
    body = client.get("/v1/users/u-z/recommendations", params={"k": 3}).json()
    flush(client)
    time.sleep(1.3)
    assert events(client, "u-z", {"movie_id": body["items"][0]["movie_id"]}) == 0


def test_a_malformed_recommendation_id_is_a_422(client: TestClient) -> None:
    for bad in ("x" * 32, "A" * 32, "0" * 33, 5):
        answer = client.post("/v1/users/u/events", json={"movie_id": "1", "recommendation_id": bad})
        assert answer.status_code == 422, bad
    bad_session = client.post("/v1/recommendations", json={"session_id": "a|b"})
    assert bad_session.status_code == 422
    assert client.get("/v1/movies/1/similar", params={"user_id": "x" * 200}).status_code == 422

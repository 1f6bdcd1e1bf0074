"""A hostile but authenticated client cannot make one request do unbounded work, nor hold the
slots ordinary requests need."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.harness.servers import Server, server_env
from service.api.admission import Admission

RECS = "/v1/users/1/recommendations"


def test_unknown_genres_are_a_422_naming_the_known_ones(client: TestClient) -> None:
    response = client.get(RECS, params={"genres": "Comedy,NoSuchGenre"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "genres"]
    assert "unknown genre(s) 'NoSuchGenre'" in error["msg"] and "Comedy, Crime" in error["msg"]
    anonymous = client.post(
        "/v1/recommendations", json={"history": [{"movie_id": "1"}], "genres": ["Dramma"]}
    )
    assert anonymous.status_code == 422
    assert "'Dramma'" in anonymous.json()["detail"][0]["msg"]


def test_a_filter_no_movie_passes_answers_empty_at_once(client: TestClient) -> None:
    response = client.get(RECS, params={"year_min": 2199, "k": 100})
    assert response.status_code == 200
    assert response.json()["strategy"] == "personalized" and response.json()["items"] == []


def test_a_rare_filter_still_finds_its_movies(client: TestClient) -> None:
    """IMAX is on few movies: every one returned is IMAX, and there are as many as asked."""
    body = client.get(RECS, params={"genres": "IMAX", "k": 20}).json()
    assert len(body["items"]) == 20 and all("IMAX" in i["genres"] for i in body["items"])


def test_a_version_the_store_never_reached_is_a_409_at_once(client: TestClient) -> None:
    response = client.get(RECS, params={"min_index_version": 10**12})
    assert response.status_code == 409
    assert "beyond the newest index version 9742" in response.json()["detail"]
    body = {"history": [{"movie_id": "1"}], "min_index_version": 10**12}
    assert client.post("/v1/recommendations", json=body).status_code == 409
    assert client.get(RECS, params={"min_index_version": 9742}).status_code == 200


def test_a_waiting_request_gives_its_slot_back_and_waits_are_limited() -> None:
    admission = Admission(max_in_flight=2, max_waiting=1)
    assert admission.enter() and admission.enter() and not admission.enter()
    with admission.parked() as admitted:
        assert admitted and admission.enter()  # the waiting request's slot went to another
        with admission.parked() as second:
            assert not second  # one waiter at most: refused
        admission.leave()
    assert admission.in_flight == 2 and admission.waiting == 0


@pytest.fixture
def small_server(app_settings, tmp_path: Path) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    env = server_env(
        app_settings.store_url, app_settings.artifacts_dir, MOVIE_RECS_MAX_IN_FLIGHT="8"
    )
    with Server(env, tmp_path / "server.log") as replica:
        replica.wait_ready()
        yield replica


@pytest.mark.slow
def test_70_clients_asking_far_ahead_do_not_starve_ordinary_requests(small_server: Server) -> None:
    async def run() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=small_server.url, limits=limits) as http:

            async def far_ahead() -> int:
                codes = []
                for _ in range(5):
                    r = await http.get(RECS, params={"min_index_version": 10**12})
                    codes.append(r.status_code)
                return max(codes)

            async def ordinary() -> list[int]:  # one well-behaved client, while they run
                codes = []
                for _ in range(20):
                    await asyncio.sleep(0.01)
                    codes.append((await http.get(RECS, params={"k": 10})).status_code)
                return codes

            hostile = [asyncio.create_task(far_ahead()) for _ in range(70)]
            fine = await ordinary()
            return list(await asyncio.gather(*hostile)), fine

    hostile, fine = asyncio.run(run())
    assert set(fine) == {200}
    assert set(hostile) == {409}

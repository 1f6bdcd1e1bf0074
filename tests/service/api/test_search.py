"""The title search route under hostile queries: repeated words, one letter, and a search that
runs past the work deadline (503 + Retry-After, the event loop free meanwhile)."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from service.index import titles
from service.index.titles import TitleSearch, normalize
from tests.support.service import MakeClient


def search(client: TestClient, q: str, limit: int = 50) -> list[str]:
    response = client.get("/v1/movies", params={"q": q, "limit": limit})
    assert response.status_code == 200, response.text
    return [normalize(item["title"]) for item in response.json()["items"]]


def test_repeated_words_answer_as_one(client: TestClient) -> None:
    assert search(client, "toy toy toy") == search(client, "toy")
    assert search(client, "amelie amelie poulain amelie") == search(client, "amelie poulain")


def test_one_letter_answers_titles_starting_with_it(client: TestClient) -> None:
    """'t' starts over 500 title words here: it matches titles starting with it, shortest
    first; repeated, it is the word "t" (from "Don't", "Can't")."""
    starting = search(client, "t")
    assert len(starting) == 50 and all(title.startswith("t") for title in starting)
    assert [len(title) for title in starting] == sorted(len(title) for title in starting)
    having = search(client, "t t t t t t t t")
    assert having and all("t" in title.split() for title in having)
    assert search(client, "the lord of the r")[0].startswith("lord of the rings")


def test_a_search_past_the_work_deadline_is_a_503_and_the_loop_stays_free(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(work_timeout_seconds=0.2)
    release = threading.Event()
    run = TitleSearch.run

    def held(self: TitleSearch) -> list[titles.Hit]:
        release.wait(10)
        return run(self)

    monkeypatch.setattr(titles, "LOOP_WORK", -1)  # every search is costly: a worker thread
    monkeypatch.setattr(TitleSearch, "run", held)
    response = client.get("/v1/movies", params={"q": "toy story"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "deadline" in response.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the thread still holds; the loop answers
    release.set()
    assert search(client, "toy story")[0] == "toy story"

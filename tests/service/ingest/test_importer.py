"""The importer streams ratings in chunks, one bulk write each, on both backends."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.movielens_synth import generate
from service.ingest.importer import import_movielens
from service.ingest.movielens import read_movielens
from service.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    generate(directory, ratings=3_000, seed=1)
    with (directory / "ratings.csv").open("a") as handle:  # two bad rows at the end
        handle.write("1,999999999,4.0,5\n1,1,four,5\n")
    return directory


async def test_chunked_import_stores_every_user_bounded_and_a_rerun_changes_nothing(
    store: Store, synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "service.ingest.movielens.EVENT_CHUNK", 250
    )  # many chunks, users across them
    data = read_movielens(synthetic)
    progress: list[int] = []
    summary = await import_movielens(store, data, progress.append)

    per_user = Counter(
        line.split(",")[0] for line in (synthetic / "ratings.csv").read_text("utf-8").splitlines()
    )
    del per_user["userId"]
    rows = sum(per_user.values())
    assert summary.events_read == rows - 2
    assert {(b.file, b.line) for b in data.bad_rows} == {
        ("ratings.csv", rows),
        ("ratings.csv", rows + 1),
    }
    assert sum(progress) == len(data.movies) + rows  # the bar ends full
    assert summary.users == len(per_user)
    # the fixture keeps 5 events per user: every user has at least 20 ratings
    assert summary.events_stored == 5 * len(per_user)

    again = await import_movielens(store, read_movielens(synthetic))
    assert again.movies_changed == 0 and again.events_stored == summary.events_stored

"""`movie-recs import-movielens` end to end on the bundled dataset, against both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embeddings.data import BUNDLED_DATA
from service.cli import app
from service.store import open_store

runner = CliRunner()


@pytest.mark.slow  # the whole bundled dataset, twice, per backend
def test_bundled_movielens_imports_fully_and_a_second_run_changes_nothing(
    store_url: str,
) -> None:
    first = runner.invoke(app, ["import-movielens", "--store-url", store_url])
    assert first.exit_code == 0, first.output
    assert "9,742" in first.output and "610" in first.output

    second = runner.invoke(app, ["import-movielens", "--store-url", store_url])
    assert second.exit_code == 0, second.output

    async def check() -> tuple[int, int, int, str]:
        store = await open_store(store_url)
        try:
            recent = await store.recent_events("1", limit=1)
            return (
                await store.count_movies(),
                await store.head_seq(),
                await store.count_events(),
                recent[0].movie_id,
            )
        finally:
            await store.close()

    movies, head, events, newest = asyncio.run(check())
    assert (movies, head) == (9742, 9742)  # the second run appended no change entries
    assert events == 94_319  # 100,836 ratings, bounded to the newest 1,000 per user
    assert newest == "2492"  # user 1's most recent rating (timestamp 965719662)


def test_missing_column_exits_non_zero_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "movies.csv").write_text((BUNDLED_DATA / "movies.csv").read_text())
    (data / "ratings.csv").write_text("userId,movieId,stars\n1,1,5\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"

    result = runner.invoke(app, ["import-movielens", str(data), "--store-url", url])

    assert result.exit_code == 2
    assert "missing columns rating, timestamp" in result.output
    assert not (tmp_path / "store.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:1/0", "cannot reach Redis"),
        ("ftp://x", "unknown store URL scheme"),
    ],
)
def test_bad_store_url_is_one_clear_line(url: str, message: str) -> None:
    result = runner.invoke(app, ["import-movielens", "--store-url", url])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output

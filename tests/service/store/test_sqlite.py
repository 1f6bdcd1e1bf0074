"""SQLite-only promises: several processes can share one file; expired histories leave it."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from service.store import Event, Movie, Upsert, open_store
from service.store.sqlite import sqlite_path

pytestmark = pytest.mark.anyio


def _writer(url: str, prefix: str, batches: int) -> None:
    async def run() -> None:
        store = await open_store(url)
        for b in range(batches):
            changes = [Upsert(Movie(id=f"{prefix}{b}-{i}", title="t")) for i in range(5)]
            await store.apply_changes(changes, dedupe_key=f"{prefix}{b}")
            await store.add_events("shared-user", [Event(f"{prefix}{b}-0", "watch", float(b))])
        await store.close()

    asyncio.run(run())


async def test_two_processes_write_one_file_without_losing_or_reordering(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, p, 40)) for p in ("p", "q")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0

    store = await open_store(url, activity_max_events=500)
    try:
        entries = await store.read_changes(after=0, limit=10_000)
        assert [e.seq for e in entries] == list(range(1, 401))
        # each batch is one transaction: its five entries are never interleaved
        batches = [e.movie_id.rsplit("-", 1)[0] for e in entries]
        assert all(len(set(batches[i : i + 5])) == 1 for i in range(0, 400, 5))
        assert await store.count_movies() == 400
        assert len(await store.recent_events("shared-user")) == 80
    finally:
        await store.close()


async def test_writes_delete_expired_histories_a_bounded_number_at_a_time(sqlite_url: str) -> None:
    store = await open_store(sqlite_url, history_ttl_seconds=0.5)
    try:
        await store.add_events_bulk({f"old{i}": [Event("1", "watch", 1.0)] for i in range(150)})
        await asyncio.sleep(0.6)
        await store.add_events("new", [Event("1", "watch", 1.0)])
        assert _rows(sqlite_url) == 150 + 1 - (100 + 2)  # a write deletes up to 100 + 2 a user
        await store.add_events("new", [Event("2", "watch", 2.0)])
        assert _rows(sqlite_url) == 1
        assert await store.count_users() == 1
    finally:
        await store.close()


def _rows(url: str) -> int:
    with sqlite3.connect(sqlite_path(url)) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM history").fetchone()[0])
    conn.close()
    return count

"""SQLite-only promises: several processes can share one file."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from pathlib import Path

import pytest

from service.store import Event, Movie, Upsert, open_store

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

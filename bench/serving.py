"""Serving benchmark: recommendations vs a trivial endpoint of the same app, at MovieLens size,
a 100k synthetic catalog (exact search) and 1M (IVF), plus the hot path's parts measured alone.

    .venv/bin/python -m bench.serving [--seconds 10] [--sizes 100000,1000000]

Each catalog gets its own `movie-recs serve` (same uvicorn settings for every row), driven by
wrk on loopback from a separate process. Ratios are against the trivial endpoint (/healthz) of
the same server, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.catalog import clustered_vectors, ensure_catalog
from bench.process import Server, server_env
from service.config import BUNDLED_DATA, Settings
from service.index import BaseIndex, IndexParams, MovieMeta, set_threads
from service.towers import Towers, load_towers

WORK = Path("var/bench")
console = Console(width=200)


def ensure_movielens(towers: Towers) -> str:
    from service.importer import import_movielens
    from service.movielens import read_movielens
    from service.store import open_store

    db = (WORK / "movielens.db").resolve()
    url = f"sqlite:///{db}"
    if db.exists():
        return url
    WORK.mkdir(parents=True, exist_ok=True)

    async def build() -> None:
        store = await open_store(url)
        await import_movielens(store, read_movielens(BUNDLED_DATA))
        await store.close()

    asyncio.run(build())
    return url


def per_call_us(fn: Callable[[], object], repeat: int = 2000) -> float:
    for _ in range(50):
        fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def hot_path_parts(towers: Towers, sizes: list[int]) -> dict[str, float]:
    """User tower (NumPy, SavedModel) and index search alone, and IVF recall@10 vs exact."""
    set_threads(1)
    rng = np.random.default_rng(3)
    history = rng.normal(size=(30, towers.dim)).astype(np.float32)
    history /= np.linalg.norm(history, axis=1, keepdims=True)
    weights = np.ones(30, np.float32)
    padded = np.zeros((1, towers.history_length, towers.dim), np.float32)
    padded[0, :30] = history
    padded_w = np.zeros((1, towers.history_length), np.float32)
    padded_w[0, :30] = 1
    parts = {
        "user tower, NumPy (served)": per_call_us(lambda: towers.embed_user(history, weights)),
        "user tower, SavedModel signature": per_call_us(
            lambda: towers.embed_user_tf(padded, padded_w), 500
        ),
    }
    for n in sizes:
        vectors = clustered_vectors(n)
        ids = [f"s{i}" for i in range(n)]
        meta = [MovieMeta("t", (), None)] * n
        exact = BaseIndex.build(ids, vectors, meta, IndexParams(ann_threshold=n))
        queries = vectors[rng.integers(0, n, 200)] + 0.3 * rng.normal(size=(200, 64))
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        query = queries[0]
        parts[f"search {n:,} exact"] = per_call_us(partial(exact.search, query, 10), 300)
        if n > Settings().ann_threshold:
            started = time.perf_counter()
            ann = BaseIndex.build(ids, vectors, meta, IndexParams(ann_threshold=0))
            parts[f"IVF build {n:,} (seconds)"] = time.perf_counter() - started
            truths = [set(exact.search(q, 10)[1].tolist()) for q in queries]
            for nprobe in (32, 64):
                ann.faiss_index.nprobe = nprobe
                label = f"{n:,} IVF nprobe={nprobe}"
                parts[f"search {label}"] = per_call_us(partial(ann.search, query, 10), 1000)
                hits = sum(
                    len(t & set(ann.search(q, 10)[1].tolist()))
                    for t, q in zip(truths, queries, strict=True)
                )
                parts[f"recall@10 vs exact, {label}"] = hits / (10 * len(queries))
    return parts


def request_breakdown(towers: Towers, store_url: str) -> dict[str, float]:
    """Where a MovieLens request's time goes outside HTTP: the store read and the recommender
    (history -> user tower -> search -> because), run in-process on the same store and model."""
    from service.index import IndexParams as Params
    from service.metrics import Metrics
    from service.recommender import Recommender
    from service.refresher import IndexState, refresh_once
    from service.store import open_store

    async def run() -> dict[str, float]:
        store = await open_store(store_url)
        state = IndexState()
        await refresh_once(state, store, towers, Params(), Metrics())
        recommender = Recommender(towers, state, [])
        users = [str(u) for u in range(1, 611)]
        histories = [await store.recent_events(u) for u in users[:50]]
        started = time.perf_counter()
        for i in range(1000):
            await store.recent_events(users[i % len(users)])
        read = (time.perf_counter() - started) / 1000 * 1e6
        await store.close()
        return {
            "MovieLens: store read of a user's 200 newest events (SQLite)": read,
            "MovieLens: recommend() (history, user tower, search, because)": per_call_us(
                lambda: recommender.recommend(histories[0], 10), 1000
            ),
        }

    return asyncio.run(run())


Row = list[Any]  # name, ready seconds, then four wrk.Load


def measure(name: str, store_url: str, prefix: str, users: tuple[int, int], seconds: int) -> Row:
    settings = Settings()
    env = server_env(store_url, settings.artifacts_dir.resolve())
    server = Server(env, WORK / f"server-{name.split()[-1].strip('()')}-{len(name)}.log")
    started = time.perf_counter()
    try:
        server.wait_ready(timeout=1800)
        ready = time.perf_counter() - started
        script = wrk.user_script(WORK, prefix, *users)
        recs_url = f"{server.url}/"
        # warm-up: first requests pay one-off costs (lazy imports, caches) that are not serving
        wrk.run(recs_url, connections=4, seconds=3, script=script)
        base = wrk.run(f"{server.url}/healthz", connections=16, seconds=seconds)
        recs = wrk.run(recs_url, connections=16, seconds=seconds, script=script)
        base1 = wrk.run(f"{server.url}/healthz", connections=1, seconds=max(3, seconds // 2))
        recs1 = wrk.run(recs_url, connections=1, seconds=max(3, seconds // 2), script=script)
    finally:
        server.stop()
    return [name, ready, base, recs, base1, recs1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--parts-only", action="store_true", help="Only the in-process parts, no servers."
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    settings = Settings()
    towers = load_towers(settings.artifacts_dir, settings.model_version)
    WORK.mkdir(parents=True, exist_ok=True)

    rows = []
    if not args.parts_only:
        rows.append(
            measure("ml-latest-small", ensure_movielens(towers), "", (1, 610), args.seconds)
        )
    for n in sizes if not args.parts_only else []:
        console.print(f"building/reusing the synthetic {n:,} catalog…")
        url = ensure_catalog(WORK, towers.version, n)
        kind = "IVF" if n > settings.ann_threshold else "exact"
        rows.append(measure(f"synthetic {n:,} ({kind})", url, "u", (0, 999), args.seconds))
    parts = request_breakdown(towers, ensure_movielens(towers))
    parts.update(hot_path_parts(towers, sizes))

    table = Table(title=f"Serving benchmark ({args.seconds}s per load, wrk -t1 -c16; p50 of -c1)")
    for column in (
        "catalog",
        "startup s",
        "trivial req/s",
        "recs req/s",
        "ratio",
        "trivial p50/p99 ms",
        "recs p50/p99 ms",
        "1-client p50 ms (trivial → recs)",
        "errors",
    ):
        table.add_column(column, justify="right")
    for name, ready, base, recs, base1, recs1 in rows:
        table.add_row(
            name,
            f"{ready:.1f}",
            f"{base.rps:,.0f}",
            f"{recs.rps:,.0f}",
            f"{recs.rps / base.rps:.2f}x",
            f"{base.p50_ms:.2f} / {base.p99_ms:.2f}",
            f"{recs.p50_ms:.2f} / {recs.p99_ms:.2f}",
            f"{base1.p50_ms:.2f} → {recs1.p50_ms:.2f} (+{recs1.p50_ms - base1.p50_ms:.2f})",
            str(base.errors + recs.errors),
        )
    console.print(table)
    micro = Table(title="Hot path parts, alone, in-process (µs per call unless noted; one thread)")
    micro.add_column("part")
    micro.add_column("value", justify="right")
    for key, value in parts.items():
        micro.add_row(key, f"{value:.3f}" if value < 2 else f"{value:,.1f}")
    console.print(micro)


if __name__ == "__main__":
    main()

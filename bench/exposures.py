"""The exposure path's cost (issue 25): what recording every list shown adds to a
recommendation, served from a private Redis.

    .venv/bin/python -m bench.exposures [--seconds 10] [--repeat 3] [--sizes 1000000]

One catalog, two `movie-recs serve` replicas on the same Redis: "recorded" with the default
settings (every list gets an id, is queued, and is written to the store by the background
flush), and "queued only" with MOVIE_RECS_EXPOSURE_QUEUE_SIZE=1 (the same request path, but the
queue is full almost always, so next to nothing is written). Rounds alternate between the two,
wrk -t1 at 1 connection (the p50 is the per-request latency) and at 16 (throughput). The
request path's own part (an id, the record, a queue append) is also timed alone in-process.
The difference "recorded - queued only" is what the background writes cost the same process;
the in-process part is what the request path pays on top of a service without exposures.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from embeddings.data import BUNDLED_DATA
from service.config import Settings
from service.experiments.exposures import ExposureRecorder, new_recommendation_id
from service.metrics import Metrics
from service.store import open_store
from service.store.records import Exposure

WORK = Path("var/bench")
console = Console(width=200)
VARIANTS = {"recorded": {}, "queued only": {"MOVIE_RECS_EXPOSURE_QUEUE_SIZE": "1"}}


def fill(url: str, size: int | None) -> tuple[str, tuple[int, int]]:
    """MovieLens (users 1-610) or a synthetic catalog of `size` movies with 1,000 users (u0-u999),
    into an empty Redis; the wrk script's user prefix and id range."""
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens

    if size is not None:
        from bench.serving import fill_redis

        fill_redis(url, Settings().model_version, size)
        return "u", (0, 999)

    async def run() -> None:
        store = await open_store(url)
        try:
            await store.clear()
            await import_movielens(store, read_movielens(BUNDLED_DATA))
        finally:
            await store.close()

    asyncio.run(run())
    return "", (1, 610)


def request_path_us() -> float:
    """Microseconds the request path adds: a new id, the Exposure, the queue append (the
    recorder's `record`), as `service/api/exposure.py` does, median of 7 runs."""
    recorder = ExposureRecorder(
        None,  # type: ignore[arg-type]  # never flushed here
        Metrics(),
        None,  # type: ignore[arg-type]
        queue_size=10**9,
        flush_seconds=1,
    )
    items = tuple(str(i) for i in range(10))

    def one() -> None:
        recorder.record(
            Exposure(new_recommendation_id(), "1", items, "user", "personalized", "m", time.time())
        )

    runs = timeit.repeat(one, number=20_000, repeat=7)
    return float(np.median(runs)) / 20_000 * 1e6


def measure(
    url: str, prefix: str, users: tuple[int, int], seconds: int, repeat: int
) -> dict[str, list[tuple[wrk.Load, wrk.Load, int]]]:
    settings = Settings()
    script = wrk.user_script(WORK, prefix, *users)
    servers: dict[str, Server] = {}
    rounds: dict[str, list[tuple[wrk.Load, wrk.Load, int]]] = {v: [] for v in VARIANTS}
    try:
        for label, extra in VARIANTS.items():
            env = server_env(url, settings.artifacts_dir.resolve(), **extra)
            server = Server(env, WORK / f"exposures-{label.replace(' ', '-')}.log")
            servers[label] = server
            server.wait_ready(timeout=1800)
            wrk.run(f"{server.url}/", connections=4, seconds=3, script=script)
            server.wait_settled()
        for _ in range(repeat):
            for label, server in servers.items():
                one = wrk.run(f"{server.url}/", connections=1, seconds=seconds, script=script)
                many = wrk.run(f"{server.url}/", connections=16, seconds=seconds, script=script)
                recorded = _recorded(server.url)
                rounds[label].append((one, many, recorded))
    finally:
        for server in servers.values():
            server.stop()
    return rounds


def _recorded(url: str) -> int:
    text = httpx.get(f"{url}/metrics").text
    for line in text.splitlines():
        if line.startswith('movie_recs_exposures_total{outcome="recorded"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="", help="Synthetic catalog sizes besides MovieLens.")
    parser.add_argument(
        "--no-movielens",
        action="store_true",
        help="The synthetic sizes only, in a section of their own.",
    )
    args, run = begin_run(parser)
    WORK.mkdir(parents=True, exist_ok=True)
    part = request_path_us()
    table = Table(
        title=f"Exposure path (wrk -t1, {args.seconds}s per load, medians of {args.repeat} "
        "alternating rounds; one private Redis)"
    )
    for column in ("catalog", "replica", "1-client p50 ms", "16-client req/s",
                   "16-client p50 / p99 ms", "exposures written"):  # fmt: skip
        table.add_column(column, justify="right")
    deltas: list[str] = []
    with RedisServer() as redis:
        catalogs: list[tuple[str, int | None]] = (
            [] if args.no_movielens else [("ml-latest-small", None)]
        )
        catalogs += [(f"synthetic {int(n):,}", int(n)) for n in args.sizes.split(",") if n]
        for name, size in catalogs:
            console.print(f"filling Redis with {name}…")
            prefix, users = fill(redis.url, size)
            rounds = measure(redis.url, prefix, users, args.seconds, args.repeat)
            p50 = {}
            for label, samples in rounds.items():
                p50[label] = float(np.median([s[0].p50_ms for s in samples]))
                table.add_row(
                    name,
                    label,
                    f"{p50[label]:.3f}",
                    f"{np.median([s[1].rps for s in samples]):,.0f}",
                    f"{np.median([s[1].p50_ms for s in samples]):.2f} / "
                    f"{np.median([s[1].p99_ms for s in samples]):.2f}",
                    f"{samples[-1][2]:,}",
                )
            delta = (p50["recorded"] - p50["queued only"]) * 1000
            deltas.append(f"{name}: {delta:+.0f} µs")
    console.print(table)
    notes = [
        f"The request path's part alone (id, record, queue append): {part:.1f} µs a list. "
        f"Writing them (1-client p50, recorded - queued only): {'; '.join(deltas)}.",
    ]
    for note in notes:
        console.print(note)
    sizes = ", ".join(f"{int(n):,}" for n in args.sizes.split(",") if n)
    name = f"exposures, {sizes} synthetic movies" if args.no_movielens else "exposures"
    run.record(name, table, notes=notes)


if __name__ == "__main__":
    main()

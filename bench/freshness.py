"""Freshness benchmark: webhook accepted -> recommendable on every replica, and serving latency
while compactions run, with two replicas on one Redis at a 100k synthetic catalog.

    .venv/bin/python -m bench.freshness [--size 100000] [--upserts 200] [--seconds 10]

"Recommendable" is measured from before the webhook is sent until both replicas have answered
a recommendation whose history is the new movie, asked with `min_index_version` = the
webhook's sequence (the replica answers as soon as it applied it), and ranked it first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from standardwebhooks.webhooks import Webhook

from bench import wrk
from bench.catalog import write_catalog
from service.config import Settings
from service.devserver import Server, free_port, server_env
from service.store import open_store
from service.towers import load_towers

SECRET = "whsec_" + "YmVuY2htYXJrLW9ubHktc2VjcmV0LW5vdC1yZWFs"  # benchmark-only
WORK = Path("var/bench")
console = Console(width=200)


def deliver(client: httpx.Client, url: str, payload: object, msg_id: str) -> int:
    body = json.dumps(payload)
    now = datetime.now(tz=UTC)
    response = client.post(
        f"{url}/v1/webhooks/catalog",
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(msg_id, now, body),
        },
    )
    response.raise_for_status()
    return int(response.json()["last_seq"])


def first_item(client: httpx.Client, url: str, movie_id: str, seq: int) -> str:
    body = {
        "history": [{"movie_id": movie_id}],
        "k": 1,
        "exclude_seen": False,
        "min_index_version": seq,
    }
    response = client.post(f"{url}/v1/recommendations", json=body)
    response.raise_for_status()
    return str(response.json()["items"][0]["movie_id"])


def compactions(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    lines = [ln for ln in text.splitlines() if ln.startswith("movie_recs_compactions_total")]
    return float(lines[0].split()[-1]) if lines else 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--compact-at", type=int, default=500)
    args = parser.parse_args()
    settings = Settings()
    towers = load_towers(settings.artifacts_dir, settings.model_version)
    WORK.mkdir(parents=True, exist_ok=True)
    redis_dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    port = free_port()
    redis = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(redis_dir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    replicas: list[Server] = []
    try:
        time.sleep(0.5)

        async def seed() -> None:
            store = await open_store(url)
            await write_catalog(store, towers.version, args.size)
            await store.close()

        console.print(f"seeding {args.size:,} synthetic movies into Redis…")
        asyncio.run(seed())
        env = server_env(
            url,
            settings.artifacts_dir.resolve(),
            MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
            MOVIE_RECS_FRESHNESS_WAIT_SECONDS="10",
            MOVIE_RECS_COMPACT_AT=str(args.compact_at),
        )
        replicas = [Server(env, WORK / f"freshness-replica-{i}.log") for i in range(2)]
        for replica in replicas:
            replica.wait_ready(timeout=900)

        # 1. webhook -> recommendable on both replicas, one upsert at a time
        seconds: list[float] = []
        wrong = 0
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(2) as pool:
            for i in range(args.upserts):
                movie = {"id": f"fresh{i}", "title": f"Fresh Release {i}", "genres": ["Drama"]}
                started = time.perf_counter()
                seq = deliver(
                    client, replicas[i % 2].url, {"type": "movie.upserted", "data": movie}, f"m{i}"
                )
                asks = [pool.submit(first_item, client, r.url, movie["id"], seq) for r in replicas]
                firsts = [ask.result() for ask in asks]
                seconds.append(time.perf_counter() - started)
                wrong += sum(f != movie["id"] for f in firsts)

        # 2. serving latency without, then during, compactions
        script = wrk.user_script(WORK, "u", 0, 999)
        target = replicas[0].url + "/"
        quiet = wrk.run(target, connections=16, seconds=args.seconds, script=script)
        before = compactions(replicas[0].url)
        with ThreadPoolExecutor(2) as pool:
            load = pool.submit(wrk.run, target, connections=16, seconds=args.seconds, script=script)

            def churn() -> None:
                with httpx.Client(timeout=60) as client:
                    deadline = time.monotonic() + args.seconds - 1
                    batch = 0
                    while time.monotonic() < deadline:
                        events = [
                            {
                                "type": "movie.upserted",
                                "data": {"id": f"c{batch}-{j}", "title": f"Churn {batch} {j}"},
                            }
                            for j in range(args.compact_at)
                        ]
                        deliver(client, replicas[1].url, {"events": events}, f"churn{batch}")
                        batch += 1
                        time.sleep(1.0)

            pool.submit(churn).result()
            busy = load.result()
        during = compactions(replicas[0].url) - before
    finally:
        for replica in replicas:
            replica.stop()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(redis_dir, ignore_errors=True)

    table = Table(title=f"Freshness at {args.size:,} movies, two replicas on one Redis")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        "webhook -> recommendable on both, p50",
        f"{percentile(seconds, 50) * 1e3:.1f} ms",
        "≤ 100 ms",
    )
    table.add_row(
        "webhook -> recommendable on both, p99",
        f"{percentile(seconds, 99) * 1e3:.1f} ms",
        "≤ 500 ms",
    )
    table.add_row("upserts measured / not ranked first", f"{len(seconds)} / {wrong}", "- / 0")
    table.add_row("serving p99 without compaction", f"{quiet.p99_ms:.2f} ms", "")
    table.add_row(
        f"serving p99 during churn ({during:.0f} compactions)", f"{busy.p99_ms:.2f} ms", ""
    )
    table.add_row("ratio during / without", f"{busy.p99_ms / quiet.p99_ms:.2f}x", "≤ 2x")
    table.add_row("req/s without / during", f"{quiet.rps:,.0f} / {busy.rps:,.0f}", "")
    console.print(table)


if __name__ == "__main__":
    main()

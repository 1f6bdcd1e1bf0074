"""Freshness benchmark: webhook accepted -> recommendable on every replica, and serving latency
while compactions run, with two replicas on one Redis at a 100k synthetic catalog.

    .venv/bin/python -m bench.freshness [--size 100000] [--upserts 200] [--seconds 10]

"Recommendable" is measured from before the webhook is sent until both replicas have answered
a recommendation whose history is the new movie, asked with `min_index_version` = the
webhook's sequence (the replica answers as soon as it applied it), and used it as history.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from bench.harness.stats import percentile
from bench.synthetic_catalog import write_synthetic
from service.config import Settings
from service.ingest.webhook_signer import post_webhook
from service.store import open_store
from service.towers import load_towers

SECRET = "whsec_" + "YmVuY2htYXJrLW9ubHktc2VjcmV0LW5vdC1yZWFs"  # benchmark-only
WORK = Path("var/bench")
console = Console(width=200)


def deliver(client: httpx.Client, url: str, payload: object, msg_id: str) -> int:
    response = post_webhook(url, SECRET, payload, msg_id=msg_id, client=client)
    response.raise_for_status()
    return int(response.json()["last_seq"])


def found(client: httpx.Client, url: str, movie_id: str, seq: int) -> bool:
    """Whether the replica, once at `seq`, finds the movie in its index (its only history item
    is used: strategy personalized, history_length 1)."""
    body = {
        "history": [{"movie_id": movie_id}],
        "k": 1,
        "exclude_seen": False,
        "min_index_version": seq,
    }
    response = client.post(f"{url}/v1/recommendations", json=body)
    response.raise_for_status()
    answer = response.json()
    return bool(answer["strategy"] == "personalized" and answer["history_length"] == 1)


def compactions(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    lines = [ln for ln in text.splitlines() if ln.startswith("movie_recs_compactions_total")]
    return float(lines[0].split()[-1]) if lines else 0.0


def upserts_to_recommendable(replicas: list[Server], upserts: int) -> tuple[list[float], int]:
    """Seconds from each webhook to recommendable on both replicas; answers without the movie."""
    seconds: list[float] = []
    wrong = 0
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(2) as pool:
        for i in range(upserts):
            movie_id = f"fresh{i}"
            movie = {"id": movie_id, "title": f"Fresh Release {i}", "genres": ["Drama"]}
            started = time.perf_counter()
            seq = deliver(
                client, replicas[i % 2].url, {"type": "movie.upserted", "data": movie}, f"m{i}"
            )
            asks = [pool.submit(found, client, r.url, movie_id, seq) for r in replicas]
            answers = [ask.result() for ask in asks]
            seconds.append(time.perf_counter() - started)
            wrong += answers.count(False)
    return seconds, wrong


@dataclass(frozen=True)
class Churn:
    """Serving load on one replica while deletes go to replica 1 (shared store)."""

    replicas: list[Server]
    script: Path
    seconds: int
    compact_at: int

    def run(self, target: Server, round_: int) -> tuple[wrk.Load, float]:
        """wrk on `target` while churning; (its load figures, compactions it ran meanwhile)."""
        before = compactions(target.url)
        with ThreadPoolExecutor(2) as pool:
            load = pool.submit(
                wrk.run, target.url + "/", connections=16, seconds=self.seconds, script=self.script
            )
            pool.submit(self.deletes, round_).result()
            result = load.result()
        return result, compactions(target.url) - before

    def deletes(self, round_: int) -> None:
        """Deletes (tombstones, no embedding work) sent to replica 1, one batch of `compact_at`
        a second."""
        with httpx.Client(timeout=60) as client:
            deadline = time.monotonic() + self.seconds - 1
            batch = 0
            while time.monotonic() < deadline:
                first = (round_ * 20 + batch) * self.compact_at  # fresh ids each batch
                events = [
                    {"type": "movie.deleted", "data": {"id": f"s{first + j}"}}
                    for j in range(self.compact_at)
                ]
                deliver(client, self.replicas[1].url, {"events": events}, f"churn{round_}-{batch}")
                batch += 1
                time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--compact-at", type=int, default=500)
    args, run = begin_run(parser)
    settings = Settings()
    towers = load_towers(settings.artifacts_dir, settings.model_version)
    WORK.mkdir(parents=True, exist_ok=True)
    replicas: list[Server] = []
    with RedisServer() as redis:
        try:

            async def seed() -> None:
                store = await open_store(redis.url)
                await write_synthetic(store, args.size, towers.version)
                await store.close()

            console.print(f"seeding {args.size:,} synthetic movies into Redis…")
            asyncio.run(seed())
            env = server_env(
                redis.url,
                settings.artifacts_dir.resolve(),
                MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
                MOVIE_RECS_FRESHNESS_WAIT_SECONDS="10",
                MOVIE_RECS_COMPACT_AT=str(args.compact_at),
            )
            # replica 0 compacts every `compact_at` changes, replica 1 never: the same write
            # load on both, so serving on one vs the other isolates what compaction costs
            never = {**env, "MOVIE_RECS_COMPACT_AT": str(10**9)}
            replicas = [
                Server(env, WORK / "freshness-replica-0.log"),
                Server(never, WORK / "freshness-replica-1.log"),
            ]
            for replica in replicas:
                replica.wait_ready(timeout=900)

            # 1. webhook -> recommendable on both replicas, one upsert at a time
            seconds, wrong = upserts_to_recommendable(replicas, args.upserts)

            # 2. serving p99 under the same churn of deletes, on the replica that does not
            # compact, then on the one that does (each batch crosses the compaction threshold)
            script = wrk.user_script(WORK, "u", 0, 999)
            churn = Churn(replicas, script, args.seconds, args.compact_at)
            wrk.run(replicas[0].url + "/", connections=4, seconds=3, script=script)  # warm-up
            wrk.run(replicas[1].url + "/", connections=4, seconds=3, script=script)
            idle = wrk.run(
                replicas[0].url + "/", connections=16, seconds=args.seconds, script=script
            )
            quiet, _ = churn.run(replicas[1], 0)
            busy, during = churn.run(replicas[0], 1)
        finally:
            for replica in replicas:
                replica.stop()
    table = report(args.size, seconds, wrong, idle, quiet, busy, during)
    console.print(table)
    run.record("freshness", table)


def report(
    size: int,
    seconds: list[float],
    wrong: int,
    idle: wrk.Load,
    quiet: wrk.Load,
    busy: wrk.Load,
    during: float,
) -> Table:
    table = Table(title=f"Freshness at {size:,} movies, two replicas on one Redis")
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
    table.add_row("upserts measured / answers without it", f"{len(seconds)} / {wrong}", "- / 0")
    table.add_row("serving p99, no writes", f"{idle.p99_ms:.2f} ms", "")
    table.add_row("serving p99 under churn, no compaction", f"{quiet.p99_ms:.2f} ms", "")
    table.add_row(
        f"serving p99 under churn, {during:.0f} full compactions", f"{busy.p99_ms:.2f} ms", ""
    )
    table.add_row(
        "p99 ratio, compactions / no compaction", f"{busy.p99_ms / quiet.p99_ms:.2f}x", "≤ 2x"
    )
    table.add_row("p99 ratio, compactions / no writes", f"{busy.p99_ms / idle.p99_ms:.2f}x", "")
    table.add_row(
        "req/s: no writes / churn / churn + compactions",
        f"{idle.rps:,.0f} / {quiet.rps:,.0f} / {busy.rps:,.0f}",
        "",
    )
    return table


if __name__ == "__main__":
    main()

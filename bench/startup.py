"""Start to ready: a replica that starts from a snapshot vs one that full-syncs from the store.

    .venv/bin/python -m bench.startup [--size 1000000] [--repeat 3] [--store redis|sqlite]

The synthetic catalog (bench/synthetic_catalog.py) goes into a private redis-server (or a
SQLite file).
A first replica full-syncs and writes its snapshot; then rounds alternate a replica given the
snapshot directory and one without it (a full sync, as every replica started before
snapshots), each a real `movie-recs serve` timed from spawn to `/readyz` = 200. Each server's
startup log gives the phases (the lifespan's own timings; "before the app" is the rest:
interpreter, imports, uvicorn). Medians.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from bench.serving import fill_redis
from bench.synthetic_catalog import ensure_catalog
from service.config import Settings
from service.towers import load_towers

WORK = Path("var/bench/startup")
console = Console(width=200)
READY = re.compile(
    r"startup phases: model ([\d.]+)s, index ([\d.]+)s, title index ([\d.]+)s, lifespan ([\d.]+)s"
)
SNAPSHOT_READ = re.compile(r"started from snapshot \S+: .*, ([\d.]+) MB in ([\d.]+)s")
POLL = 0.01
GOAL_SECONDS = 12.0  # start to ready from a snapshot at 1M movies


def start(env: dict[str, str], log: Path) -> tuple[Server, float, float]:
    """Spawn → /readyz 200, and spawn → the server's ready line (seen by polling its log)."""
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    logged: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if log.exists() and READY.search(log.read_text(errors="replace")):
                logged.append(time.perf_counter() - started)
                return
            time.sleep(POLL / 2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    server = Server(env, log)
    try:
        server.wait_ready(timeout=600, poll=POLL)
        ready = time.perf_counter() - started
        watcher.join(timeout=10)
    finally:
        done.set()
    return server, ready, logged[0] if logged else ready


def wait_for(pattern: re.Pattern[str], log: Path, timeout: float = 120) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"{pattern.pattern!r} not in {log}")


def one_start(env: dict[str, str], log: Path) -> dict[str, float]:
    server, ready, logged = start(env, log)
    try:
        phases = wait_for(READY, log)
        model, index, titles, lifespan = (float(x) for x in phases.groups())
        result = {
            "spawn → ready": ready,
            "before the app (interpreter, imports, app)": logged - lifespan,
            "store + model (NumPy towers, probe checked)": model,
            "index": index,
            "title index": titles,
            "ready logged → /readyz answered": ready - logged,
        }
        read = SNAPSHOT_READ.search(log.read_text(errors="replace"))
        if read:
            result["snapshot MB"] = float(read.group(1))
        return result
    finally:
        server.stop()


def publish(env: dict[str, str], log: Path) -> None:
    """A first replica: full sync, then its snapshot written."""
    server, _, _ = start(env, log)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            if 'movie_recs_snapshots_published_total{outcome="ok"} 1.0' in text:
                return
            time.sleep(0.5)
        raise TimeoutError("no snapshot written")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument(
        "--no-full-sync",
        action="store_true",
        help="only starts from the snapshot (the first replica still full-syncs to write it)",
    )
    args, run = begin_run(parser)
    settings = Settings()
    artifacts = settings.artifacts_dir.resolve()
    version = load_towers(artifacts, settings.model_version).version
    WORK.mkdir(parents=True, exist_ok=True)
    snapshots = WORK / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    modes = ("snapshot",) if args.no_full_sync else ("snapshot", "full sync")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with RedisServer() as redis:
        if args.store == "redis":
            console.print(f"writing {args.size:,} movies into Redis…")
            fill_redis(redis.url, version, args.size)
            url = redis.url
        else:
            url = ensure_catalog(WORK.parent, version, args.size)
        plain = server_env(url, artifacts)
        with_snapshots = {**plain, "MOVIE_RECS_SNAPSHOT_DIR": str(snapshots.resolve())}
        publish(with_snapshots, WORK / "publisher.log")
        size = sum(p.stat().st_size for p in snapshots.glob("*.snap")) / 2**20
        for round_ in range(args.repeat):
            order = [("snapshot", with_snapshots), ("full sync", plain)][: len(modes)]
            for mode, env in order if round_ % 2 == 0 else order[::-1]:
                log = WORK / f"{mode.replace(' ', '-')}-{round_}.log"
                results[mode].append(one_start(env, log))
                console.print(f"round {round_ + 1}, {mode}: {results[mode][-1]}")

    table = Table(
        title=f"Start to ready, {args.size:,} synthetic movies on {args.store} "
        f"(medians of {args.repeat} interleaved starts; snapshot file {size:,.0f} MB)"
    )
    table.add_column("phase (seconds)")
    for mode in results:
        table.add_column(mode, justify="right")
    if "full sync" in results:
        table.add_column("snapshot / full sync", justify="right")
    phases = [key for key in results["snapshot"][0] if key != "snapshot MB"]
    for phase in phases:
        values = {m: statistics.median(r[phase] for r in rs) for m, rs in results.items()}
        row = [f"{values[m]:.2f}" for m in results]
        if "full sync" in results:
            full = values["full sync"]
            row.append(f"{values['snapshot'] / full:.2f}x" if full else "")
        table.add_row(phase, *row)
    console.print(table)
    spread = {m: [round(r["spawn → ready"], 2) for r in rs] for m, rs in results.items()}
    every = f"spawn → ready, every start: {spread}"
    ready = statistics.median(r["spawn → ready"] for r in results["snapshot"])
    verdict = "met" if ready <= GOAL_SECONDS else "not met"
    goal = (
        f"from a snapshot: {ready:.2f} s to ready = {ready / GOAL_SECONDS:.2f}x the goal's "
        f"{GOAL_SECONDS:.0f} s at 1M movies: {verdict}"
    )
    console.print(every)
    console.print(goal)
    run.record("startup", table, notes=[every, goal])


if __name__ == "__main__":
    main()

"""What a second uvicorn worker costs and buys: memory per worker and throughput, 1 vs 2.

    .venv/bin/python -m bench.workers [--sizes 0,1000000] [--seconds 10] [--repeat 3]

For each catalog (0: MovieLens; else a synthetic one, bench/synthetic_catalog.py) on a private
redis-server, one `movie-recs serve` with one worker and one with two run side by side (on a
synthetic catalog every worker starts from the snapshot a first replica wrote). Once
every worker is ready, each process's resident
and proportional set sizes are read from /proc/PID/smaps_rollup (PSS splits shared pages among
the processes that map them, so it adds up to what the task really uses). Then wrk (-c16,
recommendations for random users) alternates between the two servers `--repeat` times; medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from bench.serving import fill_redis
from bench.startup import publish
from service.config import Settings
from service.towers import load_towers

WORK = Path("var/bench/workers")
console = Console(width=200)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """Rss and Pss of one process, in MiB (smaps_rollup is in kB)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"]}


def wait_lines(log: Path, text: str, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} x {text!r} not in {log}")
        time.sleep(0.2)


def start(env: dict[str, str], workers: int, name: str) -> Server:
    log = WORK / f"{name}-{workers}w.log"
    log.unlink(missing_ok=True)
    server = Server(env, log, workers=workers)
    server.wait_ready(timeout=900)
    wait_lines(log, "ready: model", workers)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,1000000", help="0 is MovieLens.")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args, run = begin_run(parser)
    settings = Settings()
    artifacts = settings.artifacts_dir.resolve()
    version = load_towers(artifacts, settings.model_version).version
    WORK.mkdir(parents=True, exist_ok=True)
    memory = Table(title="Memory per process once ready (MiB)")
    for column in ("catalog", "server", "process", "RSS", "PSS"):
        memory.add_column(column, justify="right")
    speed = Table(
        title=f"Recommendations req/s, wrk -t1 -c16 {args.seconds}s, medians of "
        f"{args.repeat} alternating rounds (the load generator shares the cores)"
    )
    for column in ("catalog", "1 worker", "2 workers", "2 / 1", "p50 ms 1 → 2", "errors"):
        speed.add_column(column, justify="right")
    with RedisServer() as redis:
        for size in (int(s) for s in args.sizes.split(",")):
            name = "MovieLens" if size == 0 else f"synthetic {size:,}"
            console.print(f"filling Redis with {name}…")
            fill_redis(redis.url, version, size or None)
            env = server_env(redis.url, artifacts)
            if size:
                # Replicas start from a snapshot, as in production (one full sync writes it).
                snapshots = (WORK / f"snapshots-{size}").resolve()
                shutil.rmtree(snapshots, ignore_errors=True)
                env = {**env, "MOVIE_RECS_SNAPSHOT_DIR": str(snapshots)}
                publish(env, WORK / f"publisher-{size}.log")
            prefix, users = ("", (1, 610)) if size == 0 else ("u", (0, 999))
            script = wrk.user_script(WORK, prefix, *users)
            servers = {n: start(env, n, name.replace(" ", "-")) for n in (1, 2)}
            try:
                for workers, server in servers.items():
                    master = server.process.pid
                    pids = [master] if workers == 1 else children(master)
                    pids = [p for p in pids if Path(f"/proc/{p}").exists()]
                    total = {"rss": 0.0, "pss": 0.0}
                    for pid in pids:
                        used = memory_mb(pid)
                        total = {k: total[k] + used[k] for k in total}
                        label = "the server" if workers == 1 else f"worker {pid}"
                        memory.add_row(
                            name, f"{workers} worker(s)", label, *(f"{used[k]:,.0f}" for k in used)
                        )
                    if workers > 1:
                        used = memory_mb(master)
                        memory.add_row(
                            name, "2 workers", "master", *(f"{used[k]:,.0f}" for k in used)
                        )
                        total = {k: total[k] + used[k] for k in total}
                        memory.add_row(
                            name, "2 workers", "all", *(f"{total[k]:,.0f}" for k in total)
                        )
                for server in servers.values():  # warm-up
                    wrk.run(f"{server.url}/", connections=4, seconds=3, script=script)
                rounds: dict[int, list[wrk.Load]] = {1: [], 2: []}
                for _ in range(args.repeat):
                    for workers, server in servers.items():
                        rounds[workers].append(
                            wrk.run(
                                f"{server.url}/",
                                connections=16,
                                seconds=args.seconds,
                                script=script,
                            )
                        )
            finally:
                for server in servers.values():
                    server.stop()
            rps = {n: statistics.median(r.rps for r in loads) for n, loads in rounds.items()}
            p50 = {n: statistics.median(r.p50_ms for r in loads) for n, loads in rounds.items()}
            errors = sum(r.errors for loads in rounds.values() for r in loads)
            speed.add_row(
                name,
                f"{rps[1]:,.0f}",
                f"{rps[2]:,.0f}",
                f"{rps[2] / rps[1]:.2f}x",
                f"{p50[1]:.2f} → {p50[2]:.2f}",
                str(errors),
            )
    console.print(memory)
    console.print(speed)
    run.record("workers", memory, speed)


if __name__ == "__main__":
    main()

"""Start to ready: a replica that starts from a snapshot vs one that full-syncs from the store;
or, with `--baseline DIR`, this code's first seconds vs another checkout's.

    .venv/bin/python -m bench.startup [--size 1000000] [--repeat 3] [--store redis|sqlite]
    .venv/bin/python -m bench.startup --baseline ../before [--sizes 0,1000000] [--repeat 3]

The synthetic catalog (bench/synthetic_catalog.py) goes into a private redis-server (or a
SQLite file).
A first replica full-syncs and writes its snapshot; then rounds alternate a replica given the
snapshot directory and one without it (a full sync, as every replica started before
snapshots), each a real `movie-recs serve` timed from spawn to `/readyz` = 200. Each server's
startup log gives the phases (the lifespan's own timings; "before the app" is the rest:
interpreter, imports, uvicorn). Medians.

`--baseline DIR` (a checkout with its own .venv, e.g. a `git worktree` of the last commit whose
replicas imported TensorFlow) compares the first seconds of a replica, each code on its own
copy of the same catalog in Redis written by its own code (MovieLens for size 0, else the
synthetic catalog), starts alternating between the two: spawn to ready and to the first
recommendation answered, recommendations/s in the first window after ready and in the next
(wrk, 16 connections), a new movie's webhook sent at ready to recommendable, and the replica's
resident memory. Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.freshness import SECRET, deliver, found
from bench.harness import machine
from bench.harness.memory import peak_rss_mb
from bench.harness.redis import RedisServer
from bench.harness.results import Run, begin_run
from bench.harness.servers import Server, server_env
from bench.serving import baseline_store, fill_redis
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
# Seconds after ready in each load window: TensorFlow's background import took ~6 s of a
# replica's CPU after ready before issue 27, and requests were ~4x slower meanwhile.
WINDOW = 6
RSS_GOAL_MIB = 300.0  # one worker once ready at MovieLens (issue 27)
RECORD = WORK.parent / "first-seconds.json"  # what lambdafit's report quotes
# Images are read from the podman storage .ci/container-smoke.sh builds into (no Docker here).
CI_STATE = Path(os.environ.get("STATE", "/var/cache/movie-recs-ci"))
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"


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


def podman(*args: str) -> str:
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(CI_STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(CI_STATE / "storage.conf"),
    }
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def image_figures(ref: str) -> dict[str, float]:
    """An image's size and its pull (each layer gzip-compressed, as a registry serves it), in
    MB (10^6 bytes, as `docker images` counts), with the base image's share of each."""
    inspect = partial(podman, "image", "inspect", "-f")
    base_layers = int(inspect("{{len .RootFS.Layers}}", BASE_IMAGE))
    with tempfile.TemporaryDirectory(dir=CI_STATE / "tmp") as tmp:
        saved = Path(tmp) / "image"
        podman("save", "-q", "--format", "docker-dir", "--compress", "-o", str(saved), ref)
        manifest = json.loads((saved / "manifest.json").read_text())
        layers = [int(layer["size"]) for layer in manifest["layers"]]
    return {
        "size_mb": int(inspect("{{.Size}}", ref)) / 1e6,
        "base_mb": int(inspect("{{.Size}}", BASE_IMAGE)) / 1e6,
        "compressed_mb": sum(layers) / 1e6,
        "base_compressed_mb": sum(layers[:base_layers]) / 1e6,
    }


@dataclass(frozen=True)
class FirstSeconds:
    """One start of one code: seconds from spawn, then what the first windows after ready held."""

    ready: float
    first_answer: float
    early_rps: float
    later_rps: float
    webhook: float
    rss_ready: float
    rss_after: float
    peak: float


def rss_mib(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def new_movie_recommendable(url: str, movie_id: str) -> float:
    """Seconds from sending a new movie's webhook to a recommendation that uses it."""
    movie = {"id": movie_id, "title": f"Just Released {movie_id}", "genres": ["Drama"]}
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        seq = deliver(client, url, {"type": "movie.upserted", "data": movie}, movie_id)
        while True:
            try:
                if found(client, url, movie_id, seq):
                    return time.perf_counter() - started
            except httpx.HTTPStatusError as exc:
                # 503: not applied within the replica's freshness wait (a replica that embeds
                # new movies only once TensorFlow has loaded after ready says so): ask again
                if exc.response.status_code != 503:
                    raise
            time.sleep(POLL)


def first_seconds(
    env: dict[str, str], cli: Path | None, log: Path, user: str, script: Path, movie_id: str
) -> FirstSeconds:
    """Start a replica, ask for one recommendation once it is ready, then at once send a new
    movie's webhook while wrk drives recommendations for two windows of WINDOW seconds."""
    server = Server(env, log, cli=cli)
    try:
        ready = server.wait_ready(timeout=1200, poll=POLL)
        rss_ready = rss_mib(server.process.pid)
        httpx.get(f"{server.url}/v1/users/{user}/recommendations?k=10", timeout=60)
        first_answer = time.perf_counter() - server.spawned
        with ThreadPoolExecutor(1) as pool:
            webhook = pool.submit(new_movie_recommendable, server.url, movie_id)
            early = wrk.run(server.url + "/", connections=16, seconds=WINDOW, script=script)
            later = wrk.run(server.url + "/", connections=16, seconds=WINDOW, script=script)
            seconds = webhook.result()
        if early.errors or later.errors:
            raise RuntimeError(f"wrk saw errors: {early}, {later}; see {log}")
        pid = server.process.pid
        return FirstSeconds(
            ready,
            first_answer,
            early.rps,
            later.rps,
            seconds,
            rss_ready,
            rss_mib(pid),
            peak_rss_mb(pid),
        )
    finally:
        server.stop()


def compare_first_seconds(args: argparse.Namespace, run: Run) -> None:
    """This code vs `args.baseline`, per catalog size, starts interleaved, medians."""
    settings = Settings()
    artifacts = settings.artifacts_dir.resolve()
    version = load_towers(artifacts, settings.model_version).version
    baseline = args.baseline.resolve()
    WORK.mkdir(parents=True, exist_ok=True)
    codes = {"before": baseline / ".venv/bin/movie-recs", "after": None}
    rows: dict[str, dict[str, list[FirstSeconds]]] = {}
    with RedisServer() as redis:
        for size in [int(s) for s in args.sizes.split(",")]:
            n = size or None
            name = f"{size:,} synthetic movies" if n else "MovieLens (ml-latest-small)"
            console.print(f"{name}: writing each code's copy into Redis…")
            fill_redis(redis.url, version, n)
            urls = {"before": baseline_store(baseline, "redis", redis.url, version, n)}
            urls["after"] = redis.url
            user, script = ("1", wrk.user_script(WORK, "", 1, 610))
            if n:
                user, script = ("u0", wrk.user_script(WORK, "u", 0, 999))
            rows[name] = {label: [] for label in codes}
            for round_ in range(args.repeat):
                order = list(codes) if round_ % 2 == 0 else list(codes)[::-1]
                for label in order:
                    env = server_env(urls[label], artifacts, MOVIE_RECS_WEBHOOK_SECRETS=SECRET)
                    log = WORK / f"first-seconds-{label}-{size}-{round_}.log"
                    movie = f"new{label}{size}r{round_}"
                    result = first_seconds(env, codes[label], log, user, script, movie)
                    rows[name][label].append(result)
                    console.print(f"{name}, round {round_ + 1}, {label}: {result}")
    table = first_seconds_table(rows, args.repeat)
    console.print(table)
    movielens = rows.get("MovieLens (ml-latest-small)")
    notes = [
        f"before: {baseline} at commit {machine.commit(baseline)} (its own .venv, with "
        "TensorFlow); after: this checkout. Each window: wrk -t1 -c16, recommendations for "
        "random users; the webhook is sent right after the first answer, during the first window."
    ]
    if movielens:
        rss = statistics.median(r.rss_after for r in movielens["after"])
        verdict = "met" if rss <= RSS_GOAL_MIB else "not met"
        notes.append(
            f"one worker at MovieLens after both windows: {rss:.0f} MiB resident "
            f"(goal ≤ {RSS_GOAL_MIB:.0f} MiB): {verdict}"
        )
    images = {}
    if args.images:
        for pair in args.images.split(","):
            label, _, ref = pair.partition("=")
            images[label] = image_figures(ref)
        table.add_section()
        for key, title in (
            ("size_mb", "image size (MB)"),
            ("compressed_mb", "image compressed: the pull (MB)"),
            ("base_mb", "of which the base image (MB)"),
            ("base_compressed_mb", "of which the base, compressed (MB)"),
        ):
            before, after = images["before"][key], images["after"][key]
            cells = [f"{before:,.0f}", f"{after:,.0f}", f"{after / before:.2f}x"]
            table.add_row(title, *cells, *[""] * (len(table.columns) - 4))
        notes.append(
            f"images: {args.images}, built by .ci/container-smoke.sh's podman on a stand-in "
            f"{BASE_IMAGE} (Debian's python3.11, slimmed like debian:bookworm-slim)"
        )
    for note in notes:
        console.print(note)
    run.record("startup: before vs after", table, notes=notes)
    if not run.write:
        return
    RECORD.write_text(
        json.dumps(
            {
                "command": run.command,
                "date": run.date,
                "commit": run.commit,
                "baseline_commit": machine.commit(baseline),
                "load_at_start": round(run.load, 2),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "window_seconds": WINDOW,
                "repeat": args.repeat,
                "catalogs": {
                    name: {label: [asdict(r) for r in rs] for label, rs in by_code.items()}
                    for name, by_code in rows.items()
                },
                "images": images,
            },
            indent=1,
        ),
        "utf-8",
    )


def first_seconds_table(rows: dict[str, dict[str, list[FirstSeconds]]], repeat: int) -> Table:
    table = Table(
        title=f"A replica's first seconds, before vs after (medians of {repeat} interleaved "
        f"starts; windows of {WINDOW} s after ready)"
    )
    table.add_column("measure")
    measures: dict[str, Callable[[FirstSeconds], float]] = {
        "spawn → ready (s)": lambda r: r.ready,
        "spawn → first recommendation (s)": lambda r: r.first_answer,
        f"recommendations/s, first {WINDOW} s after ready": lambda r: r.early_rps,
        f"recommendations/s, the {WINDOW} s after": lambda r: r.later_rps,
        "new movie: webhook at ready → recommendable (s)": lambda r: r.webhook,
        "RSS once ready (MiB)": lambda r: r.rss_ready,
        f"RSS after {2 * WINDOW} s of load (MiB)": lambda r: r.rss_after,
        "peak RSS (MiB)": lambda r: r.peak,
    }
    for name in rows:
        for label in ("before", "after"):
            table.add_column(f"{name}: {label}", justify="right")
        table.add_column("after / before", justify="right")
    for title, value in measures.items():
        cells = [title]
        for by_code in rows.values():
            before, after = (statistics.median(value(r) for r in by_code[c]) for c in by_code)
            digits = 3 if before < 1 else 2 if before < 100 else 0
            cells += [f"{before:,.{digits}f}", f"{after:,.{digits}f}", f"{after / before:.2f}x"]
        table.add_row(*cells)
    return table


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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (with .venv): its first seconds vs this code's, on Redis",
    )
    parser.add_argument(
        "--sizes",
        default="0,1000000",
        help="with --baseline: catalog sizes (0: MovieLens)",
    )
    parser.add_argument(
        "--images",
        help="with --baseline: before=REF,after=REF, images in .ci/container-smoke.sh's podman "
        "storage whose size and compressed size join the table",
    )
    args, run = begin_run(parser)
    if args.baseline:
        compare_first_seconds(args, run)
        return
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

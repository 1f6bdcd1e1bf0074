"""Hot model swap: how long a promoted model takes to reach every replica, what requests see
meanwhile, what it costs in memory, and the rollback timed the same way.

    .venv/bin/python -m bench.swap [--sizes movielens,1000000] [--replicas 2,1]
        [--store redis|sqlite] [--capacity-seconds 8]

Per catalog (the bundled MovieLens imported into a private redis-server; a synthetic catalog of
N movies, bench/synthetic_catalog.py, on `--store`): two model versions with every movie's
vector in the store's embedding cache, as `retrain` leaves it (MovieLens: each model's exported
vectors; synthetic: the clustered vectors for the image's model and the same vectors under a
fixed random rotation for the other), the second published to a local registry, and
`--replicas` real `movie-recs serve` (one count per size, the last one for the rest) that follow
the serving pointer (poll at its default). Two replicas at 1M on this machine's 2 shared cores
would each build on what Redis, the load and the other leave (in production each has its vCPU
and Redis is elsewhere), so one replica at 1M by default.

1. Capacity: wrk closed loop (-c16) on one replica, user recommendations.
2. An open-loop load at half that rate across the replicas (its own process, requests sent on a
   fixed schedule, each latency counted from its scheduled send, so a stall cannot hide), kept
   through everything below.
3. A steady window as long as the goal, then the pointer moved with the store API (the
   `models promote` CLI loads and checks the version first; the clock starts when the pointer
   moves) and every replica's /readyz polled every 50 ms until each names the
   new version.
4. A steady window as long as the promotion took (at most the goal), then the rollback, timed
   the same way.

Requests in the swap (pointer moved → every replica serving) against the window just before
it, as long (a swap longer than the goal is compared with the goal's length of steady load);
each replica's peak RSS (VmHWM, reset through /proc/PID/clear_refs when a window starts) in the
swap and its settling second against the steady window, and against the Fargate task's memory
(infra/config.py); the replicas' log lines, stamped as seen, say where a build's time went, and
the swap's parts are then timed alone in a fresh process on the quiet machine.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import json
import math
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.harness import machine
from bench.harness.memory import peak_rss_mb
from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, cli_command, server_env
from bench.harness.stats import percentile
from bench.serving import fill_redis
from bench.synthetic_catalog import GENERATOR, ensure_catalog
from embeddings.artifacts import read_manifest, resolve_model_dir
from embeddings.registry import open_registry
from service.config import Settings
from service.store import Store, open_store

WORK = Path("var/bench/swap")
MODELS = WORK / "models"  # the second version, trained once (`movie-recs train --seed 1`)
REGISTRY = WORK / "registry"
RUN = WORK / "run"  # replica logs and model caches, anew each catalog
POLL = 0.05  # seconds between /readyz polls, log reads
LOAD_SHARE = 0.5  # of one replica's closed-loop capacity
WARM_SECONDS = 3.0  # open-loop load before the first steady window
SETTLE_SECONDS = 1.0  # after every replica serves: the old index is let go
REQUEST_TIMEOUT = 10.0
MAX_OPEN = 512  # connections the load may hold: past it, requests wait (and count the wait)
BATCH = 5000
ROTATION_SEED = 11
GOALS = {"movielens": 10.0, "synthetic": 60.0}  # seconds, promote → every replica serving
P99_GOAL = 2.0  # p99 in the swap / steady
RSS_GOAL = 1.8  # peak RSS in the swap / steady
QUIET_LOAD = 1.5  # one-minute load below which the timed part starts (the cores are shared)
console = Console(width=200)

PROMOTED = re.compile(r"model (\S+) promoted: building its index beside (\S+)")
LOADED = re.compile(r"loaded model (\S+) from \S+ \(NumPy towers checked[^)]*\) in ([\d.]+)s")
SERVING = re.compile(
    r"now serving model (\S+) \(was \S+\): \d+ movies at sequence \d+, built in ([\d.]+)s"
)
FAILED = re.compile(r"cannot serve model \S+: (.*); still serving \S+; retrying in ([\d.]+)s")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
CLOSE = re.compile(rb"\r\nconnection:\s*close", re.I)
VERSION = re.compile(rb'"model_version":\s*"([^"]+)"')

T = TypeVar("T")


def run_async(work: Callable[[Store], Coroutine[Any, Any, T]], url: str) -> T:
    """`work(store)` on a store opened for it."""

    async def go() -> T:
        store = await open_store(url)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


# The two model versions and the store.
@dataclass(frozen=True)
class Model:
    version: str
    directory: Path


def model_at(directory: Path) -> Model:
    resolved = resolve_model_dir(directory)
    return Model(str(read_manifest(resolved)["version"]), resolved.resolve())


def ensure_models(settings: Settings) -> tuple[Model, Model]:
    """The image's model and a second one (trained once, kept), published to the registry."""
    own = settings.artifacts_dir
    own = own if settings.model_version == "latest" else own / settings.model_version
    first = model_at(own)
    if not (MODELS / "latest").is_file():
        console.print(f"training a second model into {MODELS} (a few minutes, once)…")
        with (WORK / "train.log").open("wb") as log:
            command = [str(cli_command()), "train", "--seed", "1", "--out", str(MODELS)]
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"training failed: {WORK / 'train.log'}")
    second = model_at(MODELS)
    if second.version == first.version:
        raise SystemExit(f"{MODELS} holds the image's own model {first.version}")
    open_registry(REGISTRY.resolve()).publish(second.directory)  # the same files: a no-op
    return first, second


async def warm_from_export(store: Store, model: Model) -> int:
    """A model's exported vectors into the cache at each movie's current version (what
    `retrain` does at its cut)."""
    ids = json.loads((model.directory / "movie_ids.json").read_text("utf-8"))
    vectors = np.load(model.directory / "movie_vectors.npy")
    row = {movie_id: i for i, movie_id in enumerate(ids)}
    written = 0
    async for batch in store.iter_movies(BATCH):
        found = {m.id: (m.version, vectors[row[m.id]]) for m in batch if m.id in row}
        await store.put_embeddings(model.version, found)
        written += len(found)
    return written


async def rotate_cache(store: Store, source: str, target: str) -> int:
    """`target`'s cache: `source`'s vectors under one fixed random rotation (the same clusters,
    the same recall, other coordinates), at the same movie versions."""
    rotation: np.ndarray | None = None
    written = 0
    async for batch in store.iter_movies(BATCH):
        cached = await store.get_embeddings(source, {m.id: m.version for m in batch})
        ids = [m.id for m in batch if m.id in cached]
        if not ids:
            continue
        vectors = np.stack([cached[i] for i in ids])
        if rotation is None:
            rng = np.random.default_rng(ROTATION_SEED)
            rotation = np.linalg.qr(rng.normal(size=(vectors.shape[1],) * 2))[0]
        turned = (vectors @ rotation).astype(np.float32)
        versions = {m.id: m.version for m in batch}
        await store.put_embeddings(target, {i: (versions[i], turned[k]) for k, i in enumerate(ids)})
        written += len(ids)
    return written


def sqlite_catalog(n: int, first: Model, second: Model) -> str:
    """A copy of ensure_catalog's SQLite store with the second model's cache too, built once
    (the shared one is left alone: the pointer moves in this copy only)."""
    source = ensure_catalog(Path("var/bench"), first.version, n).removeprefix("sqlite:///")
    db = (WORK / f"synthetic-{n}.db").resolve()
    marker = WORK / f"synthetic-{n}.json"
    wanted = {"n": n, "generator": GENERATOR, "models": [first.version, second.version]}
    url = f"sqlite:///{db}"
    if marker.is_file() and json.loads(marker.read_text()) == wanted and db.is_file():
        return url
    db.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    run_async(lambda store: rotate_cache(store, first.version, second.version), url)
    marker.write_text(json.dumps(wanted))
    return url


def prepare_store(
    n: int | None, store: str, redis_url: str, first: Model, second: Model
) -> tuple[str, float]:
    """The catalog with both models' caches, serving the first; its URL and the setup seconds."""
    started = time.perf_counter()
    if n is not None and store == "sqlite":
        url = sqlite_catalog(n, first, second)
    else:
        url = redis_url
        fill_redis(url, first.version, n)
        if n is None:

            async def warm(store: Store) -> None:
                for model in (first, second):
                    await warm_from_export(store, model)

            run_async(warm, url)
        else:
            run_async(lambda s: rotate_cache(s, first.version, second.version), url)

    async def reset(store: Store) -> None:  # a stopped earlier run may have left it moved
        if await store.serving_model() not in (None, first.version):
            await store.promote_model(first.version, "bench.swap: reset")

    run_async(reset, url)
    return url, time.perf_counter() - started


def wait_for_quiet(timeout: float = 600.0) -> float:
    """The one-minute load once below QUIET_LOAD (looked at every 30 s, for up to `timeout`):
    other work shares the cores, and so does this run's own setup (a catalog written, each
    replica's full sync)."""
    deadline = time.monotonic() + timeout
    while (load := os.getloadavg()[0]) >= QUIET_LOAD and time.monotonic() < deadline:
        console.print(f"load {load:.2f}: waiting for it to fall below {QUIET_LOAD}…")
        time.sleep(30)
    return load


def move_pointer(url: str, version: str, note: str) -> float:
    """Promote `version` with the store API; the time.monotonic() the call started."""

    async def promote(store: Store) -> float:
        moved = time.monotonic()
        await store.promote_model(version, note)
        return moved

    return run_async(promote, url)


# The open-loop load, in a process of its own.
@dataclass(frozen=True)
class Samples:
    """One row per request, by the time it was scheduled (time.monotonic(), system-wide)."""

    scheduled: np.ndarray
    latency: np.ndarray  # seconds from the scheduled send to the whole answer
    status: np.ndarray  # HTTP status; 0: no answer (connection error, timeout)
    replica: np.ndarray
    version: np.ndarray  # index into `versions`; -1: none named
    versions: tuple[str, ...]
    errors: dict[str, int]

    def between(self, start: float, end: float) -> np.ndarray:
        return np.asarray((self.scheduled >= start) & (self.scheduled < end))


def _load_process(
    conn: Connection, urls: list[str], prefix: str, users: tuple[int, int], rate: float
) -> None:
    import uvloop

    conn.send(uvloop.run(_open_loop(conn, urls, prefix, users, rate)))


async def _open_loop(
    conn: Connection, urls: list[str], prefix: str, users: tuple[int, int], rate: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
    targets = [(httpx.URL(u).host, httpx.URL(u).port or 80) for u in urls]
    idle: list[list[Pair]] = [[] for _ in urls]
    rows: list[tuple[float, float, int, int, int]] = []
    versions: dict[bytes, int] = {}
    errors: Counter[str] = Counter()
    slots = asyncio.Semaphore(MAX_OPEN)
    pending: set[asyncio.Task[None]] = set()
    rng = np.random.default_rng(7)

    async def one(number: int, at: float, user: int) -> None:
        r = number % len(urls)
        host, port = targets[r]
        request = (
            f"GET /v1/users/{prefix}{user}/recommendations?k=10 HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n\r\n"
        ).encode()
        code, named = 0, -1
        async with slots:
            pair = idle[r].pop() if idle[r] else None
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    if pair is None:
                        pair = await asyncio.open_connection(host, port)
                    reader, writer = pair
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = CONTENT_LENGTH.search(head)
                    if length is None:
                        raise ValueError("an answer without content-length")
                    body = await reader.readexactly(int(length.group(1)))
                code = int(head[9:12])
                if CLOSE.search(head):
                    writer.close()
                    pair = None
                found = VERSION.search(body)
                if found:
                    named = versions.setdefault(found.group(1), len(versions))
            except (OSError, EOFError, TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
                errors[type(exc).__name__] += 1
                if pair is not None:
                    pair[1].close()
                    pair = None
            if pair is not None:
                idle[r].append(pair)
        rows.append((at, loop.time() - at, code, r, named))

    start = loop.time()
    conn.send(start)
    number, look = 0, start
    while True:
        at = start + number / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if loop.time() >= look:
            if conn.poll():
                break
            look += POLL
        task = loop.create_task(one(number, at, int(rng.integers(users[0], users[1] + 1))))
        pending.add(task)
        task.add_done_callback(pending.discard)
        number += 1
    if pending:
        await asyncio.wait(pending, timeout=REQUEST_TIMEOUT + 5)
    table = np.array(sorted(rows), dtype=np.float64).reshape(-1, 5)
    return {
        "table": table,
        "versions": tuple(v.decode() for v in sorted(versions, key=versions.__getitem__)),
        "errors": dict(errors),
        "unfinished": len(pending),
    }


class OpenLoop:
    """`with OpenLoop(...) as load:` sends `rate` requests a second across `urls` until
    `load.stop()` returns what they got."""

    def __init__(self, urls: list[str], prefix: str, users: tuple[int, int], rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_load_process, args=(child, urls, prefix, users, rate), daemon=True
        )
        self.started = 0.0

    def __enter__(self) -> OpenLoop:
        self.process.start()
        if not self._conn.poll(120):
            raise TimeoutError("the load generator did not start")
        self.started = float(self._conn.recv())
        return self

    def stop(self) -> Samples:
        self._conn.send("stop")
        if not self._conn.poll(REQUEST_TIMEOUT + 60):
            raise TimeoutError("the load generator did not stop")
        out = self._conn.recv()
        self.process.join(30)
        table = out["table"]
        errors = dict(out["errors"])
        if out["unfinished"]:
            errors["unfinished at the end"] = int(out["unfinished"])
        return Samples(
            scheduled=table[:, 0],
            latency=table[:, 1],
            status=table[:, 2].astype(int),
            replica=table[:, 3].astype(int),
            version=table[:, 4].astype(int),
            versions=out["versions"],
            errors=errors,
        )

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


# Watching the replicas.
class LogWatch(threading.Thread):
    """A replica's model lines, each stamped with the time.monotonic() it was first seen."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.lines: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._offset = log.stat().st_size

    def run(self) -> None:
        partial = b""
        with self.log.open("rb") as source:
            source.seek(self._offset)
            while not self._done.is_set():
                chunk = source.read()
                now = time.monotonic()
                *complete, partial = (partial + chunk).split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    if "model " in line:
                        self.lines.append((now, line))
                time.sleep(POLL)

    def find_all(self, pattern: re.Pattern[str], after: float) -> list[tuple[float, re.Match[str]]]:
        lines = ((seen, pattern.search(line)) for seen, line in list(self.lines) if seen >= after)
        return [(seen, found) for seen, found in lines if found]

    def find(self, pattern: re.Pattern[str], after: float) -> tuple[float, re.Match[str]] | None:
        return next(iter(self.find_all(pattern, after)), None)

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def wait_all_serving(urls: list[str], version: str, since: float, timeout: float) -> list[float]:
    """Seconds from `since` until each replica's /readyz names `version` (polled every 50 ms)."""
    seen: list[float | None] = [None] * len(urls)
    problems: list[str | None] = [None] * len(urls)

    def watch(i: int) -> None:
        with httpx.Client(timeout=5) as client:
            while time.monotonic() - since < timeout:
                asked = time.monotonic()
                try:
                    ready = client.get(f"{urls[i]}/readyz").json()
                except (httpx.HTTPError, ValueError) as exc:
                    problems[i] = repr(exc)
                else:
                    if ready.get("model_version") == version:
                        seen[i] = time.monotonic() - since
                        return
                    problems[i] = ready.get("model_swap_error")
                time.sleep(max(0.0, asked + POLL - time.monotonic()))

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(s is None for s in seen):
        raise TimeoutError(f"not every replica serves {version} in {timeout:.0f} s: {problems}")
    return [float(s) for s in seen if s is not None]


def reset_peak(pid: int) -> None:
    """VmHWM back to the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fargate_memory_mib() -> int:
    """The task memory infra/config.py gives a replica (read from its source: no CDK import)."""
    tree = ast.parse((machine.ROOT / "infra/config.py").read_text("utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "memory_mib"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int)
        ):
            return node.value.value
    raise RuntimeError("no memory_mib in infra/config.py")


# One move of the pointer, and one catalog's run.
@dataclass(frozen=True)
class Move:
    name: str  # "promote" or "rollback"
    version: str
    steady_start: float
    moved: float  # time.monotonic() when the pointer moved
    seen: list[float]  # per replica: seconds from `moved` to /readyz naming `version`
    steady_peak: list[float]  # MiB, per replica
    swap_peak: list[float]
    steady_cpu: list[float]  # CPU seconds a second, steady window
    swap_cpu: list[float]  # CPU seconds in the swap
    noticed: list[float | None]  # seconds to the "promoted: building" line
    loaded: list[float | None]  # the model load + probe check the replica logged
    loaded_at: list[float | None]  # seconds from `moved` to that line
    built: list[float | None]  # the "built in" the replica logged
    failed_attempts: list[list[str]]  # why each attempt that failed before it swapped

    @property
    def done(self) -> float:
        return max(self.seen)

    @property
    def end(self) -> float:
        return self.moved + self.done


def move(
    name: str,
    version: str,
    url: str,
    servers: list[Server],
    watches: list[LogWatch],
    steady_seconds: float,
    timeout: float,
) -> Move:
    pids = [s.process.pid for s in servers]
    steady_start = time.monotonic()
    for pid in pids:
        reset_peak(pid)
    cpu0 = [cpu_seconds(p) for p in pids]
    time.sleep(steady_seconds)
    steady_peak = [peak_rss_mb(p) for p in pids]
    for pid in pids:
        reset_peak(pid)
    cpu1 = [cpu_seconds(p) for p in pids]
    steady_cpu = [
        (b - a) / (time.monotonic() - steady_start) for a, b in zip(cpu0, cpu1, strict=True)
    ]
    console.print(f"{name}: {version}, pointer moved")
    moved = move_pointer(url, version, f"bench.swap {name}")
    seen = wait_all_serving([s.url for s in servers], version, moved, timeout)
    cpu2 = [cpu_seconds(p) for p in pids]
    time.sleep(SETTLE_SECONDS)
    swap_peak = [peak_rss_mb(p) for p in pids]
    noticed = [w.find(PROMOTED, moved) for w in watches]
    loads = [w.find(LOADED, moved) for w in watches]
    built = [w.find(SERVING, moved) for w in watches]
    console.print(f"{name}: every replica serves {version} after {[round(s, 2) for s in seen]} s")
    return Move(
        name,
        version,
        steady_start,
        moved,
        seen,
        steady_peak,
        swap_peak,
        steady_cpu,
        [b - a for a, b in zip(cpu1, cpu2, strict=True)],
        [n[0] - moved if n else None for n in noticed],
        [float(t[1].group(2)) if t else None for t in loads],
        [t[0] - moved if t else None for t in loads],
        [float(b[1].group(2)) if b else None for b in built],
        [[f.group(1) for _, f in w.find_all(FAILED, moved)] for w in watches],
    )


@dataclass(frozen=True)
class Catalog:
    name: str  # section and row label
    kind: str  # "movielens" or "synthetic"
    n: int | None
    store: str
    replicas: int
    load: float  # one-minute load when this catalog's timed part started
    setup_s: float
    capacity: wrk.Load
    rate: float
    moves: list[Move]
    samples: Samples
    parts: dict[str, Part]


def measure(
    kind: str,
    n: int | None,
    store: str,
    replicas: int,
    capacity_seconds: int,
    models: tuple[Model, Model],
) -> Catalog:
    first, second = models
    name = "ml-latest-small" if n is None else f"{n:,} synthetic movies"
    console.print(f"[bold]{name}[/] on {store}, {replicas} replica(s)")
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    prefix, users = ("", (1, 610)) if n is None else ("u", (0, 999))
    goal = GOALS[kind]
    with RedisServer() as redis:
        url, setup_s = prepare_store(n, store, redis.url, first, second)
        console.print(f"store ready in {setup_s:.1f} s")
        env = server_env(
            url,
            first.directory.parent.resolve(),
            MOVIE_RECS_MODEL_VERSION=first.directory.name,
            MOVIE_RECS_REGISTRY_URL=str(REGISTRY.resolve()),
        )
        servers: list[Server] = []
        watches: list[LogWatch] = []
        try:
            for i in range(replicas):
                cache = {"MOVIE_RECS_MODEL_CACHE_DIR": str((RUN / f"cache-{i}").resolve())}
                servers.append(server := Server({**env, **cache}, RUN / f"replica-{i}.log"))
                server.wait_ready(timeout=1800)
                server.wait_settled(timeout=600)  # its start-up done: the next starts alone
            load = wait_for_quiet()
            console.print(f"load {load:.2f}: measuring")
            script = wrk.user_script(WORK, prefix, *users)
            for server in servers:
                wrk.run(f"{server.url}/", connections=4, seconds=3, script=script)  # warm-up
            capacity = wrk.run(
                f"{servers[0].url}/", connections=16, seconds=capacity_seconds, script=script
            )
            rate = LOAD_SHARE * capacity.rps
            console.print(f"capacity {capacity.rps:,.0f} req/s; driving {rate:,.0f} req/s")
            watches = [LogWatch(s.log) for s in servers]
            for watch in watches:
                watch.start()
            urls = [s.url for s in servers]
            with OpenLoop(urls, prefix, users, rate) as driven:
                time.sleep(WARM_SECONDS)
                timeout = max(600.0, 10 * goal)
                promoted = move("promote", second.version, url, servers, watches, goal, timeout)
                again = min(goal, float(math.ceil(promoted.done)))
                back = move("rollback", first.version, url, servers, watches, again, timeout)
                time.sleep(SETTLE_SECONDS)
                samples = driven.stop()
        finally:
            for watch in watches:
                watch.stop()
            for server in servers:
                server.stop()
        console.print("the swap's parts, alone…")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = pool.submit(swap_parts, url, second.version).result()
    return Catalog(
        name,
        kind,
        n,
        store,
        replicas,
        load,
        setup_s,
        capacity,
        rate,
        [promoted, back],
        samples,
        parts,
    )


@dataclass(frozen=True)
class Part:
    seconds: float
    stall_ms: float  # the event loop's longest stall meanwhile
    collections_s: float  # in full (generation 2) garbage collections, which stop every thread
    longest_collection_ms: float


class Collections:
    """Full garbage collections (generation 2), timed through gc.callbacks."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def _track(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def __enter__(self) -> Collections:
        gc.callbacks.append(self._track)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._track)


class LagMonitor:
    """The event loop's longest stall: a task that asks to wake every millisecond."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - asked - 0.001)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def swap_parts(url: str, version: str) -> dict[str, Part]:
    """What a replica's `_prepare` does for `version`, each part timed alone in this fresh
    process and run as the refresher runs it (blocking work in a worker thread), with the event
    loop's longest stall meanwhile: registry fetch (verified) + NumPy towers loaded and checked
    against the version's probe, cache read
    (+ the movie tower on misses) over the served index's columns, index build."""
    from service.index.live import BaseIndex, MetaTable, index_params, set_threads
    from service.index.refresher import SYNC_BATCH, meta_of
    from service.index.vectors import catalog_vectors
    from service.model_source import ModelSource
    from service.store import Movie

    settings = Settings()
    set_threads(settings.omp_threads)
    parts: dict[str, Part] = {}

    async def part(label: str, work: Coroutine[Any, Any, T]) -> T:
        with LagMonitor() as lag, Collections() as collections:
            started = time.perf_counter()
            result = await work
            pauses = collections.pauses
            parts[label] = Part(
                time.perf_counter() - started,
                lag.worst * 1e3,
                sum(pauses),
                max(pauses, default=0.0) * 1e3,
            )
        return result

    async def prepare(store: Store) -> None:
        source = ModelSource(str(REGISTRY.resolve()), RUN / "cache-parts")
        towers = await part(
            "registry fetch (SHA-256 of every file) + NumPy towers checked against the probe",
            asyncio.to_thread(source.load, version),
        )

        async def read() -> tuple[list[str], MetaTable]:
            movies: dict[str, Movie] = {}
            async for batch in store.iter_movies(SYNC_BATCH):
                movies.update((m.id, m) for m in batch)
            items = list(movies.values())
            return [m.id for m in items], MetaTable.of(meta_of(m) for m in items)

        # The served index's ids and columns, which a swap reuses: read here untimed.
        ids, metas = await read()
        vectors, found = await part(
            f"cache read, {len(ids):,} movies (the new movie tower on misses)",
            catalog_vectors(store, towers, ids, metas.versions),
        )
        if not found.all():
            raise SystemExit(f"{int((~found).sum())} movies without a vector")
        await part(
            "index build (FAISS, nprobe calibrated on recall, columns)",
            asyncio.to_thread(BaseIndex.build, ids, vectors, metas, index_params(settings)),
        )

    run_async(prepare, url)
    every = list(parts.values())
    parts["total"] = Part(
        sum(p.seconds for p in every),
        max(p.stall_ms for p in every),
        sum(p.collections_s for p in every),
        max(p.longest_collection_ms for p in every),
    )
    return parts


# The tables.
@dataclass(frozen=True)
class Window:
    seconds: float
    requests: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    versions: Counter[str]
    failures: Counter[int]  # status (0: no answer) of each failed request


def window(samples: Samples, start: float, end: float) -> Window:
    picked = samples.between(start, end)
    latency = samples.latency[picked] * 1e3
    status = samples.status[picked]
    named = Counter(
        samples.versions[v] if v >= 0 else "none" for v in samples.version[picked].tolist()
    )
    empty = len(latency) == 0
    bad = (status < 200) | (status >= 300)
    return Window(
        end - start,
        int(picked.sum()),
        int(bad.sum()),
        math.nan if empty else percentile(latency.tolist(), 50),
        math.nan if empty else percentile(latency.tolist(), 99),
        math.nan if empty else float(latency.max()),
        named,
        Counter(status[bad].tolist()),
    )


def slowest(samples: Samples, replica: int, start: float, end: float) -> tuple[float, float]:
    """A replica's slowest request scheduled in [start, end): (answered, seconds after
    `start`; its latency, ms)."""
    picked = np.flatnonzero(samples.between(start, end) & (samples.replica == replica))
    if len(picked) == 0:
        return math.nan, math.nan
    worst = picked[np.argmax(samples.latency[picked])]
    latency = float(samples.latency[worst])
    return float(samples.scheduled[worst]) + latency - start, latency * 1e3


def verdict(met: bool) -> str:
    return "met" if met else "not met"


def optional(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report(c: Catalog, fargate_mib: int) -> tuple[list[Table], list[str]]:
    goal = GOALS[c.kind]
    setting = f"{c.name}, {c.store}, {c.replicas} replica(s)"
    timing = Table(
        title=f"Pointer moved → every replica's /readyz names the version ({setting}; polled "
        f"every {POLL * 1e3:.0f} ms, under the load below)"
    )
    for column in ("move", "to version", "each replica s", "all serving s", "goal s", "vs goal"):
        timing.add_column(column, justify="right")
    requests = Table(
        title=f"Requests, open loop at {c.rate:,.0f} req/s across the replicas "
        f"({LOAD_SHARE:.0%} of one replica's {c.capacity.rps:,.0f} req/s closed-loop capacity, "
        "user recommendations; the steady window is the one just before the move, as long as "
        "the swap)"
    )
    for column in (
        "move",
        "window",
        "s",
        "requests",
        "failed",
        "p50 ms",
        "p99 ms",
        "max ms",
        f"p99 vs steady (goal ≤ {P99_GOAL:g}x)",
        "versions answered",
    ):
        requests.add_column(column, justify="right")
    memory = Table(
        title="Peak RSS of each replica process (VmHWM): the steady window vs the swap and the "
        f"second after it, against the Fargate task's {fargate_mib:,} MiB (infra/config.py)"
    )
    for column in (
        "move",
        "replica",
        "steady peak MiB",
        "swap peak MiB",
        f"swap / steady (goal ≤ {RSS_GOAL:g}x)",
        "swap peak / task memory",
    ):
        memory.add_column(column, justify="right")
    where = Table(
        title="Where each replica's swap went (its log lines, stamped as seen within "
        f"{POLL * 1e3:.0f} ms; CPU from /proc)"
    )
    for column in (
        "move",
        "replica",
        "pointer → build started s",
        "model load + probe check s (logged)",
        "built in s (logged: start → swapped)",
        "model loaded at s",
        "failed attempts",
        "pointer → /readyz names it s",
        "slowest request: answered at s, ms",
        "replica CPU s in the swap",
        "its steady CPU s/s",
    ):
        where.add_column(column, justify="right")
    notes: list[str] = []
    swap_windows: list[Window] = []
    for m in c.moves:
        timing.add_row(
            m.name,
            m.version,
            ", ".join(f"{s:.2f}" for s in m.seen),
            f"{m.done:.2f}",
            f"{goal:.0f}",
            f"{m.done / goal:.2f}x",
        )
        steady = window(c.samples, max(m.steady_start, m.moved - m.done), m.moved)
        swap = window(c.samples, m.moved, m.end)
        swap_windows.append(swap)
        for label, w in (("steady", steady), ("swap", swap)):
            ratio = f"{w.p99_ms / steady.p99_ms:.2f}x" if label == "swap" else ""
            requests.add_row(
                m.name,
                label,
                f"{w.seconds:.1f}",
                f"{w.requests:,}",
                f"{w.failed}"
                + (
                    f" ({', '.join(f'{k}: {v}' for k, v in sorted(w.failures.items()))})"
                    if w.failed
                    else ""
                ),
                f"{w.p50_ms:.2f}",
                f"{w.p99_ms:.2f}",
                f"{w.max_ms:.1f}",
                ratio,
                ", ".join(f"{v}: {k:,}" for v, k in sorted(w.versions.items())),
            )
        for i in range(c.replicas):
            memory.add_row(
                m.name,
                str(i),
                f"{m.steady_peak[i]:,.0f}",
                f"{m.swap_peak[i]:,.0f}",
                f"{m.swap_peak[i] / m.steady_peak[i]:.2f}x",
                f"{m.swap_peak[i] / fargate_mib:.2f}x",
            )
            where.add_row(
                m.name,
                str(i),
                optional(m.noticed[i]),
                optional(m.loaded[i]),
                optional(m.built[i], 1),
                optional(m.loaded_at[i]),
                "; ".join(m.failed_attempts[i]) or "0",
                f"{m.seen[i]:.2f}",
                "{:.2f}, {:.0f}".format(*slowest(c.samples, i, m.moved, m.end)),
                f"{m.swap_cpu[i]:.1f}",
                f"{m.steady_cpu[i]:.2f}",
            )
        p99 = swap.p99_ms / steady.p99_ms
        rss = max(s / b for s, b in zip(m.swap_peak, m.steady_peak, strict=True))
        notes.append(
            f"{m.name} to {m.version}: every replica serving after {m.done:.2f} s = "
            f"{m.done / goal:.2f}x the {goal:.0f} s goal: {verdict(m.done <= goal)}; "
            f"{swap.failed} failed of {swap.requests:,} requests in the swap (goal 0: "
            f"{verdict(swap.failed == 0)}); p99 {swap.p99_ms:.1f} ms vs {steady.p99_ms:.1f} ms "
            f"steady = {p99:.2f}x (goal ≤ {P99_GOAL:g}x: {verdict(p99 <= P99_GOAL)}); peak RSS "
            f"up to {rss:.2f}x steady (goal ≤ {RSS_GOAL:g}x: {verdict(rss <= RSS_GOAL)}), "
            f"{max(m.swap_peak):,.0f} MiB = {max(m.swap_peak) / fargate_mib:.2f}x the task's "
            f"{fargate_mib:,} MiB."
        )
    parts = Table(
        title="The promotion's parts, alone: one fresh process, servers stopped (a rollback to "
        "the image's model skips the fetch and the load)"
    )
    parts.add_column("part")
    parts.add_column("seconds", justify="right")
    parts.add_column("event loop's longest stall ms", justify="right")
    parts.add_column("in full GCs s (longest ms)", justify="right")
    for label, value in c.parts.items():
        parts.add_row(
            label,
            f"{value.seconds:.2f}",
            f"{value.stall_ms:.1f}",
            f"{value.collections_s:.2f} ({value.longest_collection_ms:.0f})",
        )
    failed = int(((c.samples.status < 200) | (c.samples.status >= 300)).sum())
    promoted = c.moves[0].version
    model_mb = sum(f.stat().st_size for f in (REGISTRY / promoted).rglob("*") if f.is_file())
    notes += [
        f"Load {c.load:.2f} when the timed part started (after the setup). Store: {c.store} "
        f"({'the bundled MovieLens imported' if c.n is None else 'the synthetic catalog'}, "
        f"both models' caches written, in {c.setup_s:.0f} s). Capacity: wrk -t1 -c16 "
        f"closed loop on replica 0 alone, p99 {c.capacity.p99_ms:.1f} ms.",
        f"Every request of the run: {len(c.samples.status):,}, {failed} failed"
        + (f"; transport errors {c.samples.errors}" if c.samples.errors else "")
        + ". Latency counts from each request's scheduled send (no coordinated omission); "
        "failed = not 2xx, 0 = no answer (a 10 s timeout, or the connection closed first).",
        "The pointer is moved with Store.promote_model (`models promote` loads and checks "
        "the version first); the promote's steady window is the goal's length, the "
        "rollback's as long as the promotion took (at most the goal). The registry is a local "
        f"directory: its fetch verifies {model_mb / 2**20:.1f} MiB of files in place, where S3 "
        "would download them first.",
    ]
    if c.n is not None and c.replicas == 1:
        notes.append(
            "One replica at this size: two on these 2 shared cores, beside Redis and the load "
            "generator, would each build on what the others leave, where production gives each "
            "replica its own vCPU and Redis a node of its own."
        )
    return [timing, requests, memory, where, parts], notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="movielens,1000000", help="movielens and/or N movies")
    parser.add_argument(
        "--replicas", default="2,1", help="Replicas per size, in order (the last one repeats)."
    )
    parser.add_argument(
        "--store",
        choices=("redis", "sqlite"),
        default="redis",
        help="The synthetic catalogs' store (MovieLens is always on Redis).",
    )
    parser.add_argument("--capacity-seconds", type=int, default=8)
    args, run = begin_run(parser)
    WORK.mkdir(parents=True, exist_ok=True)
    models = ensure_models(Settings())
    fargate_mib = fargate_memory_mib()
    replicas = [int(r) for r in args.replicas.split(",") if r]
    for number, size in enumerate(s for s in args.sizes.split(",") if s):
        n = None if size == "movielens" else int(size)
        kind = "movielens" if n is None else "synthetic"
        store = "redis" if n is None else args.store
        catalog = measure(
            kind, n, store, replicas[min(number, len(replicas) - 1)], args.capacity_seconds, models
        )
        tables, notes = report(catalog, fargate_mib)
        for table in tables:
            console.print(table)
        for note in notes:
            console.print(note, highlight=False)
        run.record(f"swap, {catalog.name}", *tables, notes=notes)


if __name__ == "__main__":
    main()

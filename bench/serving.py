"""Serving benchmark: recommendations vs a trivial endpoint of the same app, at MovieLens size
and synthetic catalogs, on Redis (the production store, a private redis-server) and SQLite,
plus the hot path's parts measured alone and the index's recall@10 vs exact.

    .venv/bin/python -m bench.serving [--seconds 10] [--sizes 100000,1000000]
        [--stores redis,sqlite] [--baseline ../other-checkout] [--repeat 3]

Each catalog gets its own `movie-recs serve` (same uvicorn settings for every row), driven by
wrk on loopback from a separate process. Ratios are against the trivial endpoint (/healthz) of
the same server, measured in the same round. `--baseline DIR` also serves the same store with
DIR's code (its own .venv, on its own copy of the store written by its own code, so a change
of storage format is compared fairly) and alternates rounds between the two servers,
`--repeat` times; the table shows medians, so shared cores load both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from starlette.types import Message, Scope

from bench import wrk
from bench.harness import machine
from bench.harness.recall import queries_near, recall
from bench.harness.redis import RedisServer
from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from bench.synthetic_catalog import clustered_vectors, ensure_catalog, write_synthetic
from embeddings.data import BUNDLED_DATA
from service.config import Settings
from service.index.live import BaseIndex, IndexParams, MovieMeta, exact_neighbours, set_threads
from service.store import open_store
from service.towers import Towers, load_towers

WORK = Path("var/bench")
console = Console(width=200)


def fill_redis(url: str, model_version: str, n: int | None) -> None:
    """MovieLens (n None) or the synthetic catalog of n movies, into an empty Redis."""
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens

    async def fill() -> None:
        store = await open_store(url)
        try:
            await store.clear()
            if n is None:
                await import_movielens(store, read_movielens(BUNDLED_DATA))
            else:
                await write_synthetic(store, n, model_version)
        finally:
            await store.close()

    asyncio.run(fill())


def ensure_movielens(towers: Towers) -> str:
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens

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


def baseline_store(
    baseline: Path, backend: str, redis_url: str, model_version: str, n: int | None
) -> str:
    """The baseline's own store, written by the baseline's own code (its Redis database 1, or
    a SQLite file under its checkout): when the two differ in storage format, each must read
    what it wrote, or the baseline would serve users without history."""
    if backend == "redis":
        url = redis_url.rsplit("/", 1)[0] + "/1"
        code = f"from bench.serving import fill_redis; fill_redis({url!r}, {model_version!r}, {n})"
    elif n is None:
        code = "from bench.serving import ensure_movielens; print(ensure_movielens(None))"
    else:
        code = (
            "from pathlib import Path; from bench.synthetic_catalog import ensure_catalog; "
            f"print(ensure_catalog(Path('var/bench'), {model_version!r}, {n}))"
        )
    out = subprocess.run(
        [str(baseline.resolve() / ".venv/bin/python"), "-c", code],
        cwd=baseline,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return url if backend == "redis" else out.strip().splitlines()[-1]


def per_call_us(fn: Callable[[], object], repeat: int = 2000) -> float:
    for _ in range(50):
        fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def hot_path_parts(towers: Towers, sizes: list[int]) -> dict[str, float]:
    """User tower (NumPy, SavedModel) and index search alone, and IVF recall@10 vs exact."""
    from embeddings.artifacts import open_towers  # TensorFlow: only for this comparison

    saved = open_towers(towers.directory, towers.manifest)
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
            lambda: saved.embed_users(padded, padded_w), 500
        ),
    }
    for n in sizes:
        vectors = clustered_vectors(n)
        ids = [f"s{i}" for i in range(n)]
        meta = [MovieMeta("t", (), None)] * n
        exact = BaseIndex.build(ids, vectors, meta, IndexParams(ann_threshold=n))
        queries = queries_near(vectors, 200)
        query = queries[0]
        parts[f"search {n:,} exact"] = per_call_us(partial(exact.search, query, 10), 300)
        if n > Settings().ann_threshold:
            started = time.perf_counter()
            ann = BaseIndex.build(ids, vectors, meta, IndexParams(ann_threshold=0))
            parts[f"IVF build {n:,}, recall measured (seconds)"] = time.perf_counter() - started
            label = f"{n:,} IVF nprobe={ann.faiss_index.nprobe} (chosen by the build)"
            parts[f"search {label}"] = per_call_us(partial(ann.search, query, 10), 1000)
            truth = exact_neighbours(ann.vectors, queries, 10)
            parts[f"recall@10 vs exact, {label}"] = recall(ann, queries, truth)
        else:
            parts[f"recall@10 vs exact, {n:,} (exact search)"] = 1.0
    return parts


def request_breakdown(towers: Towers, store_urls: dict[str, str]) -> dict[str, float]:
    """Where a MovieLens request's time goes outside HTTP: the store read and the recommender
    (history -> user tower -> search -> because), run in-process on the same store and model."""
    from service.index.live import IndexParams as Params
    from service.index.refresher import Refresher
    from service.metrics import Metrics
    from service.recommender import Recommender

    async def run() -> dict[str, float]:
        store = await open_store(next(iter(store_urls.values())))
        refresher = Refresher(store, towers, Params(), Metrics())
        await refresher.step()
        recommender = Recommender(refresher)
        users = [str(u) for u in range(1, 611)]
        histories = [await store.recent_history(u) for u in users[:50]]
        await store.close()
        parts = {}
        for backend, url in store_urls.items():
            reader = await open_store(url)
            started = time.perf_counter()
            for i in range(1000):
                await reader.recent_history(users[i % len(users)])
            read = (time.perf_counter() - started) / 1000 * 1e6
            await reader.close()
            parts[f"MovieLens: store read of a user's 200 newest events ({backend})"] = read
        parts["MovieLens: recommend() (history, user tower, search, because)"] = per_call_us(
            lambda: recommender.recommend(histories[0], 10), 1000
        )
        for backend, url in store_urls.items():
            for route, path in (("/healthz", "/healthz"), ("recommendations", "/v1/users/{}")):
                parts[f"MovieLens: whole ASGI app, no HTTP, {route} ({backend})"] = await in_app(
                    towers, url, path
                )
        return parts

    return asyncio.run(run())


async def in_app(towers: Towers, store_url: str, path: str, requests: int = 2000) -> float:
    """µs per GET through the whole app (middleware, routing, parameters, the route), called
    in-process: with the store read and recommend() above, what the framework costs."""
    from service.api.app import create_app

    app = create_app(Settings(store_url=store_url, auth_disabled=True), towers)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    def scope(user: int) -> Scope:
        url = path.format(user % 610 + 1) + ("/recommendations" if "{}" in path else "")
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url,
            "raw_path": url.encode(),
            "query_string": b"k=10",
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

    async with app.router.lifespan_context(app):
        for user in range(200):
            await app(scope(user), receive, send)
        if any(m.get("status", 200) != 200 for m in sent):
            raise RuntimeError(f"in-process {path} did not answer 200")
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            for user in range(requests):
                await app(scope(user), receive, send)
            samples.append((time.perf_counter() - started) / requests * 1e6)
            sent.clear()
    return float(np.median(samples))


def _same_parameters(route: Callable[..., object]) -> Callable[..., object]:
    """An endpoint with `route`'s parameters and dependencies that answers at once: what
    FastAPI costs to resolve them, apart from what the route does."""
    import inspect
    import typing

    from fastapi import Response

    hints = typing.get_type_hints(route, include_extras=True)
    signature = inspect.signature(route)

    async def same(**_: object) -> Response:
        return Response(b"{}", media_type="application/json")

    same.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints[p.name]) for p in signature.parameters.values()],
        return_annotation=Response,
    )
    return same


async def request_parts(towers: Towers, store_url: str, requests: int = 2000) -> dict[str, float]:
    """µs per MovieLens recommendation request, part by part, in-process (no HTTP): the whole
    app for /healthz, for an endpoint with the route's parameters that does nothing, and for
    the route; then each thing the route does, alone, on the same app's state and users. What
    is left is what the parts do not name (the middleware's per-route work, the response)."""
    from service.api.access import READ
    from service.api.app import create_app
    from service.api.deps import require
    from service.api.exposure import show
    from service.api.routes import recommendations as routes
    from service.api.schemas import response_body
    from service.api.state import AppState
    from service.store.records import Exposure

    app = create_app(Settings(store_url=store_url, auth_disabled=True), towers)
    app.add_api_route(
        "/bench/users/{user_id}/recommendations",
        _same_parameters(routes.user_recommendations),
        methods=["GET"],
        dependencies=[require(READ)],
    )
    users = [str(u) for u in range(1, 611)]
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    def scope(path: str) -> Scope:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"k=10",
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

    async def per_request(call: Callable[[int], Awaitable[object]]) -> float:
        for i in range(200):
            await call(i)
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            for i in range(requests):
                await call(i)
            samples.append((time.perf_counter() - started) / requests * 1e6)
            sent.clear()
        return float(np.median(samples))

    def whole(path: str) -> Callable[[int], Awaitable[object]]:
        return lambda i: app(scope(path.format(users[i % len(users)])), receive, send)

    async with app.router.lifespan_context(app):
        state: AppState = app.state.app_state
        histories = [await state.store.recent_history(u) for u in users]
        results = [state.recommender.recommend(h, 10) for h in histories]
        shown = show(state, "1", "user", "personalized", "v", results[0].items, None)

        async def read(i: int) -> object:
            return await state.store.recent_history(users[i % len(users)])

        async def recommend(i: int) -> object:
            return state.recommender.recommend(histories[i % len(users)], 10)

        async def assign_and_show(i: int) -> object:
            user, result = users[i % len(users)], results[i % len(users)]
            assigned = state.experiments.assign(user)
            return show(state, user, "user", result.strategy, "v", result.items, assigned)

        async def body(i: int) -> object:
            return response_body(results[i % len(users)], users[i % len(users)], shown)

        exposures = [
            Exposure(f"{i:032x}", users[i], tuple(it.movie_id for it in results[i].items), "user",
                     "personalized", "v", time.time(), None, None)
            for i in range(100)
        ]  # fmt: skip

        async def exposure_write(i: int) -> object:  # a batch of 100 per 100 requests
            if i % 100 == 0:
                await state.store.add_exposures(exposures, state.exposures.limits)
            return None

        healthz = await per_request(whole("/healthz"))
        same = await per_request(whole("/bench/users/{}/recommendations"))
        full = await per_request(whole("/v1/users/{}/recommendations"))
        parts = {
            "the store read (GET of the user's history, decoded)": await per_request(read),
            "recommend(): history -> vectors, user tower, search, re-rank, because": (
                await per_request(recommend)
            ),
            "experiment assignment + exposure queued": await per_request(assign_and_show),
            "exposure batch write to the store, per request": await per_request(exposure_write),
            "response body (JSON bytes)": await per_request(body),
        }
        assert all(m.get("status", 200) == 200 for m in sent), "a request did not answer 200"
    named = sum(parts.values()) + same - healthz
    return {
        "whole app, /healthz": healthz,
        "whole app, recommendations": full,
        "recommendations over /healthz": full - healthz,
        "FastAPI: the route's parameters and dependencies (an endpoint doing nothing, "
        "over /healthz)": same - healthz,
        **parts,
        "not named above (route and middleware bookkeeping, the Response)": full - healthz - named,
    }


@dataclass(frozen=True)
class Row:
    """Medians over the rounds of one server."""

    catalog: str
    code: str
    ready_s: float
    trivial_rps: float
    recs_rps: float
    trivial_p50: float
    recs_p50: float
    recs_p99: float
    ratio: float
    one_trivial_p50: float
    one_recs_p50: float
    one_delta: float
    errors: int
    full_gcs: float | None = None  # full collections in the server during the rounds (its metric)
    full_gc_ms: float | None = None


def full_collections(server: Server) -> tuple[int, float] | None:
    """The server's full garbage collections so far and their seconds (None: a server without
    the metric, e.g. an older baseline)."""
    import httpx

    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    found = dict(
        re.findall(r'^movie_recs_gc_pause_seconds_(count|sum)\{generation="2"\} (\S+)$', text, re.M)
    )
    if len(found) < 2:
        return None
    return int(float(found["count"])), float(found["sum"])


def one_round(server: Server, script: Path, seconds: int) -> tuple[wrk.Load, ...]:
    recs_url = f"{server.url}/"
    base = wrk.run(f"{server.url}/healthz", connections=16, seconds=seconds)
    recs = wrk.run(recs_url, connections=16, seconds=seconds, script=script)
    base1 = wrk.run(f"{server.url}/healthz", connections=1, seconds=max(3, seconds // 2))
    recs1 = wrk.run(recs_url, connections=1, seconds=max(3, seconds // 2), script=script)
    return base, recs, base1, recs1


def measure(
    name: str,
    prefix: str,
    users: tuple[int, int],
    seconds: int,
    codes: dict[str, tuple[Path | None, str]],
    repeat: int,
) -> list[Row]:
    """One server per code (`codes`: label -> its `movie-recs`, its store URL), started one
    after the other once the previous one settled (so each startup is timed alone), then rounds
    alternating between them.
    Returns one row per code, medians."""
    settings = Settings()
    script = wrk.user_script(WORK, prefix, *users)
    servers: dict[str, Server] = {}
    ready: dict[str, float] = {}
    rounds: dict[str, list[tuple[wrk.Load, ...]]] = {label: [] for label in codes}
    try:
        for label, (cli, store_url) in codes.items():
            env = server_env(store_url, settings.artifacts_dir.resolve())
            started = time.perf_counter()
            log = WORK / f"server-{label}-{len(servers)}.log"
            servers[label] = server = Server(env, log, cli=cli)
            server.wait_ready(timeout=1800)
            ready[label] = time.perf_counter() - started
            # warm-up: first requests pay one-off costs (lazy imports, caches)
            wrk.run(f"{server.url}/", connections=4, seconds=3, script=script)
            server.wait_settled()  # the next server's startup is timed on quiet cores
        before = {label: full_collections(server) for label, server in servers.items()}
        for _ in range(repeat):
            for label, server in servers.items():
                rounds[label].append(one_round(server, script, seconds))
        after = {label: full_collections(server) for label, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for label, samples in rounds.items():

        def median(
            value: Callable[[tuple[wrk.Load, ...]], float], of: list[tuple[wrk.Load, ...]] = samples
        ) -> float:
            return float(np.median([value(s) for s in of]))

        rows.append(
            Row(
                name,
                label,
                ready[label],
                trivial_rps=median(lambda s: s[0].rps),
                recs_rps=median(lambda s: s[1].rps),
                trivial_p50=median(lambda s: s[0].p50_ms),
                recs_p50=median(lambda s: s[1].p50_ms),
                recs_p99=median(lambda s: s[1].p99_ms),
                ratio=median(lambda s: s[1].rps / s[0].rps),
                one_trivial_p50=median(lambda s: s[2].p50_ms),
                one_recs_p50=median(lambda s: s[3].p50_ms),
                one_delta=median(lambda s: s[3].p50_ms - s[2].p50_ms),
                errors=sum(s[0].errors + s[1].errors for s in samples),
                **gc_delta(before[label], after[label]),
            )
        )
    return rows


def gc_delta(
    before: tuple[int, float] | None, after: tuple[int, float] | None
) -> dict[str, float | None]:
    if before is None or after is None:
        return {}
    return {"full_gcs": after[0] - before[0], "full_gc_ms": (after[1] - before[1]) * 1e3}


P99_GOAL = 3.0  # issue 27: p99 <= 3x p50 at 16 clients
HEALTHZ_GOAL = 0.8  # /healthz at 1M within 20 % of MovieLens


def tail_table(rows: list[Row]) -> Table:
    """The tail, beside its goals: p99 / p50 of recommendations at 16 clients, /healthz req/s
    against the same code's MovieLens row, and the full collections the server ran meanwhile."""
    table = Table(
        title="Tail at 16 clients, beside the goals (p99 <= 3x p50; /healthz >= 0.8x MovieLens)"
    )
    for column in (
        "catalog, store",
        "code",
        "recs p50 / p99 ms",
        "p99 / p50",
        "/healthz req/s",
        "vs MovieLens",
        "full GCs in the rounds (ms)",
    ):
        table.add_column(column, justify="right")
    movielens = {r.code: r.trivial_rps for r in rows if r.catalog.startswith("ml-latest")}
    for row in rows:
        spread = row.recs_p99 / row.recs_p50
        base = movielens.get(row.code)
        versus = row.trivial_rps / base if base else None
        table.add_row(
            row.catalog,
            row.code,
            f"{row.recs_p50:.2f} / {row.recs_p99:.2f}",
            f"{spread:.2f}x " + ("(met)" if spread <= P99_GOAL else "(missed)"),
            f"{row.trivial_rps:,.0f}",
            "-"
            if versus is None
            else f"{versus:.2f}x " + ("(met)" if versus >= HEALTHZ_GOAL else "(missed)"),
            "n/a" if row.full_gcs is None else f"{row.full_gcs:.0f} ({row.full_gc_ms:,.0f})",
        )
    return table


def rows_table(rows: list[Row], seconds: int, repeat: int) -> Table:
    table = Table(
        title=f"Serving benchmark ({seconds}s per load, wrk -t1 -c16; p50 of -c1; "
        f"medians of {repeat} alternating rounds)"
    )
    for column in (
        "catalog, store",
        "code",
        "startup s",
        "trivial req/s",
        "recs req/s",
        "ratio",
        "trivial p50 ms",
        "recs p50/p99 ms",
        "1-client p50 ms (trivial → recs)",
        "errors",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.catalog,
            row.code,
            f"{row.ready_s:.1f}",
            f"{row.trivial_rps:,.0f}",
            f"{row.recs_rps:,.0f}",
            f"{row.ratio:.3f}x",
            f"{row.trivial_p50:.2f}",
            f"{row.recs_p50:.2f} / {row.recs_p99:.2f}",
            f"{row.one_trivial_p50:.2f} → {row.one_recs_p50:.2f} (+{row.one_delta:.2f})",
            str(row.errors),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--stores", default="redis,sqlite", help="Backends to serve from.")
    parser.add_argument("--baseline", type=Path, help="Another checkout (with .venv) to compare.")
    parser.add_argument("--repeat", type=int, default=1, help="Rounds per server (medians).")
    parser.add_argument(
        "--parts-only", action="store_true", help="Only the in-process parts, no servers."
    )
    parser.add_argument(
        "--no-movielens", action="store_true", help="Serve the synthetic sizes only."
    )
    args, run = begin_run(parser)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    stores = [s for s in args.stores.split(",") if s]
    settings = Settings()
    towers = load_towers(settings.artifacts_dir, settings.model_version)
    WORK.mkdir(parents=True, exist_ok=True)

    rows: list[Row] = []
    with RedisServer() as redis:
        catalogs: list[tuple[str, int | None]] = (
            [] if args.no_movielens else [("ml-latest-small", None)]
        )
        catalogs += [(f"synthetic {n:,}", n) for n in sizes]
        for name, n in catalogs if not args.parts_only else []:
            prefix, users = ("", (1, 610)) if n is None else ("u", (0, 999))
            for backend in stores:
                if backend == "redis":
                    console.print(f"filling Redis with {name}…")
                    fill_redis(redis.url, towers.version, n)
                    url = redis.url
                elif n is None:
                    url = ensure_movielens(towers)
                else:
                    url = ensure_catalog(WORK, towers.version, n)
                kind = "" if n is None else " (IVF)" if n > settings.ann_threshold else " (exact)"
                codes: dict[str, tuple[Path | None, str]] = {"this": (None, url)}
                if args.baseline:
                    other = baseline_store(args.baseline, backend, redis.url, towers.version, n)
                    cli = (args.baseline / ".venv/bin/movie-recs").resolve()
                    codes = {"baseline": (cli, other), "this": (None, url)}
                rows += measure(
                    f"{name}{kind}, {backend}", prefix, users, args.seconds, codes, args.repeat
                )
        if rows:  # before the parts: a failure there must not lose minutes of measurements
            served = rows_table(rows, args.seconds, args.repeat)
            tail = tail_table(rows)
            console.print(served, tail)
            notes = (
                [f"baseline: {args.baseline} at commit {machine.commit(args.baseline.resolve())}"]
                if args.baseline
                else []
            )
            # An A/B is its own section: it does not replace the current table of this code alone.
            run.record(
                "serving vs baseline" if args.baseline else "serving", served, tail, notes=notes
            )
        fill_redis(redis.url, towers.version, None)
        parts = request_breakdown(
            towers, {"SQLite": ensure_movielens(towers), "Redis, hiredis": redis.url}
        )
        request = asyncio.run(request_parts(towers, redis.url))
    by_part = Table(
        title="A MovieLens recommendation on Redis, part by part (µs per request, in-process, "
        "no HTTP; medians of 3 x 2,000)"
    )
    by_part.add_column("part")
    by_part.add_column("µs", justify="right")
    for key, value in request.items():
        by_part.add_row(key, f"{value:,.1f}")
    console.print(by_part)
    run.record("serving, a request part by part", by_part)
    parts.update(hot_path_parts(towers, sizes))

    micro = Table(title="Hot path parts, alone, in-process (µs per call unless noted; one thread)")
    micro.add_column("part")
    micro.add_column("value", justify="right")
    for key, value in parts.items():
        micro.add_row(key, f"{value:.3f}" if value < 2 else f"{value:,.1f}")
    console.print(micro)
    run.record("serving parts", micro)


if __name__ == "__main__":
    main()

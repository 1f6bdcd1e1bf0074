"""Online A/B by simulation (issue 25): simulated users replayed from held-out MovieLens
behaviour drive the real service over HTTP through an experiment, and the service's own report
says which variant won.

    .venv/bin/python -m bench.online [--rounds 5] [--k 10] [--seed 7] [--model-b DIR]

Each of the 610 MovieLens users keeps the first 80 % of their ratings (by time) as history;
the last 20 % are their "true next movies". Over `--rounds` rounds every user asks for
recommendations; a user watches the first recommended movie that is among their true next
movies (once each), posting the event with the list's `recommendation_id` half of the time and
without it (attributed by the window) the other half, a moment after the lists were shown. Two
experiments, each on a fresh copy of the store: the model (`personalized`) vs `popular`, and an
A/A (`personalized` twice), whose interval should include 0. With `--model-b DIR` (a model
version directory), a third: the bundled model vs that version, published to a registry of the
run's own and served by the same replica beside the promoted one (decision 35); the replica's
resident memory before the experiment and once B's index is ready prices holding it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.harness.results import begin_run
from bench.harness.servers import Server, server_env
from embeddings.artifacts import resolve_model_dir
from embeddings.data import BUNDLED_DATA
from embeddings.registry import open_registry
from service.config import Settings
from service.ingest.movielens import read_movielens
from service.store import Event, Upsert, open_store

WORK = Path("var/bench/online")
console = Console(width=200)
HELD_OUT = 0.2
BATCH = 100  # users shown their lists before any of them acts
THINK_SECONDS = 0.3  # between seeing a list and acting on it (> the exposure flush)
READY_SECONDS = 300  # a variant's model: fetched, its index built (seconds at MovieLens)
Variants = list[dict[str, str]]
EXPERIMENTS: dict[str, Variants] = {
    "model-vs-popular": [
        {"name": "model", "strategy": "personalized"},
        {"name": "popular", "strategy": "popular"},
    ],
    "a-a": [{"name": "a1", "strategy": "personalized"}, {"name": "a2", "strategy": "personalized"}],
}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def split() -> tuple[dict[str, list[Event]], dict[str, list[str]]]:
    """Each user's first 80 % of ratings by time (history) and the movies of the rest."""
    events = read_movielens(BUNDLED_DATA).all_events()
    history: dict[str, list[Event]] = {}
    future: dict[str, list[str]] = {}
    for user, user_events in events.items():
        ordered = sorted(user_events, key=lambda e: e.timestamp)
        cut = int(len(ordered) * (1 - HELD_OUT))
        history[user] = ordered[:cut]
        future[user] = [e.movie_id for e in ordered[cut:]]
    return history, future


def seed_template(path: Path, history: dict[str, list[Event]]) -> None:
    path.unlink(missing_ok=True)

    async def run() -> None:
        store = await open_store(f"sqlite:///{path}")
        try:
            movies = read_movielens(BUNDLED_DATA).movies
            for start in range(0, len(movies), 1000):
                await store.apply_changes([Upsert(m) for m in movies[start : start + 1000]])
            await store.add_events_bulk(history)
        finally:
            await store.close()

    asyncio.run(run())


def batches(users: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(users), BATCH):
        yield users[start : start + BATCH]


def run_experiment(
    template: Path,
    name: str,
    variants: Variants,
    future: dict[str, list[str]],
    rounds: int,
    k: int,
    seed: int,
) -> dict[str, Any]:
    """A fresh copy of the store, a server, the experiment, the simulated users; the report."""
    db = WORK / f"{name}.db"
    shutil.copy(template, db)
    env = server_env(
        f"sqlite:///{db.resolve()}",
        Settings().artifacts_dir.resolve(),
        MOVIE_RECS_EXPERIMENT_MIN_USERS="100",
        MOVIE_RECS_REGISTRY_URL=str((WORK / "registry").resolve()),
        MOVIE_RECS_MODEL_CACHE_DIR=str((WORK / "model-cache").resolve()),
    )
    rng = random.Random(seed)
    left = {user: set(movies) for user, movies in future.items()}
    posted = 0
    with Server(env, WORK / f"{name}.log") as server, httpx.Client(base_url=server.url) as http:
        server.wait_ready(timeout=600)
        before = rss_mb(server.process.pid)
        http.post("/v1/experiments", json={"name": name, "variants": variants}).raise_for_status()
        deadline = time.monotonic() + READY_SECONDS
        while http.get("/v1/users/1/recommendations").json()["experiment"] is None:
            if time.monotonic() > deadline:  # a variant's model never got ready
                raise SystemExit(f"{name}: nobody assigned after {READY_SECONDS} s")
            time.sleep(0.2)
        rss = (before, rss_mb(server.process.pid))
        users = sorted(future, key=int)
        for _ in range(rounds):
            for group in batches(users):
                shown = {}
                for user in group:
                    answer = http.get(f"/v1/users/{user}/recommendations", params={"k": k})
                    shown[user] = answer.raise_for_status().json()
                time.sleep(THINK_SECONDS)
                for user, body in shown.items():
                    ids = [item["movie_id"] for item in body["items"]]
                    hit = next((movie for movie in ids if movie in left[user]), None)
                    if hit is None:
                        continue
                    left[user].discard(hit)
                    event: dict[str, Any] = {"movie_id": hit, "kind": "watch"}
                    if rng.random() < 0.5:
                        event["recommendation_id"] = body["recommendation_id"]
                    http.post(f"/v1/users/{user}/events", json=event).raise_for_status()
                    posted += 1
        report: dict[str, Any] = (
            http.get(f"/v1/experiments/{name}/report").raise_for_status().json()
        )
        server.stop()
    report["events_posted"] = posted
    report["rss_mb"] = rss
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report_table(report: dict[str, Any]) -> Table:
    attributed = sum(v["attributed"] for v in report["variants"])
    table = Table(
        title=f"{report['experiment']}: {report['events_posted']:,} watch events posted, "
        f"{attributed:,} attributed; srm p = {report['srm_p_value']:.3g}; replica RSS "
        f"{report['rss_mb'][0]:.0f} -> {report['rss_mb'][1]:.0f} MiB with the experiment"
    )
    for column in ("variant", "users", "exposures", "attributed", "per-user rate",
                   "lift vs control [95 % CI]", "p", "per-exposure rate",
                   "lift per exposure [95 % CI]", "verdict"):  # fmt: skip
        table.add_column(column, justify="right")
    for v in report["variants"]:
        user, exposure = v["per_user"], v["per_exposure"]

        def lift(c: dict[str, Any] | None) -> str:
            if c is None:
                return "control"
            return f"{c['lift']:+.1%} [{c['ci_low']:+.1%}, {c['ci_high']:+.1%}]"

        table.add_row(
            f"{v['name']} ({v['strategy']}{'@' + v['model'] if v['model'] else ''})",
            f"{v['users']:,}",
            f"{v['exposures']:,}",
            f"{v['attributed']:,}",
            _pct(v["per_user_rate"]),
            lift(user),
            "-" if user is None else f"{user['p_value']:.2g}",
            _pct(v["per_exposure_rate"]),
            lift(exposure),
            v["verdict"] or "-",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--model-b", type=Path, help="A model version directory to test against the bundled one."
    )
    args, run = begin_run(parser)
    WORK.mkdir(parents=True, exist_ok=True)
    experiments = dict(EXPERIMENTS)
    if args.model_b is not None:
        other = open_registry(WORK / "registry").publish(resolve_model_dir(args.model_b))
        experiments["model-a-vs-b"] = [
            {"name": "a", "strategy": "personalized"},
            {"name": "b", "strategy": "personalized", "model": other},
        ]
    history, future = split()
    template = WORK / "template.db"
    console.print("seeding the store with the first 80 % of every user's ratings…")
    seed_template(template, history)
    tables = []
    for offset, (name, variants) in enumerate(experiments.items()):
        console.print(f"running {name}…")
        report = run_experiment(
            template, name, variants, future, args.rounds, args.k, args.seed + offset
        )
        tables.append(report_table(report))
        console.print(tables[-1])
        console.print(report["note"])
    notes = [
        f"610 MovieLens users, their last {HELD_OUT:.0%} of ratings held out as the movies they "
        f"would watch; {args.rounds} rounds of k = {args.k}; half the events carry the "
        "recommendation_id, half are attributed by the window; the verdict needs 100 users a "
        "variant here (MOVIE_RECS_EXPERIMENT_MIN_USERS). The model was trained on all of "
        "MovieLens, held-out ratings included, so its lead over popularity is an upper bound.",
    ]
    run.record("online", *tables, notes=notes)


if __name__ == "__main__":
    main()

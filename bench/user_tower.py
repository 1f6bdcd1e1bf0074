"""The user tower's cost per request as served (`Towers.embed_user`, NumPy, one thread): the
pooling tower against the sequential one, at history lengths L = 50 and 200.

    .venv/bin/python -m bench.user_tower --pooling artifacts/<v> --sequential artifacts/<w>
        [--lengths 50,200] [--rounds 5] [--no-write]

Each model is loaded as a replica loads it (its probe checked). A model is trained at one L (the
bundled ones at 50); for a longer L its position table is extended (cyclically) to that length:
the cost of a call depends on the shapes only, not on the values. Each call gets a full history
of L real events (catalog vectors, ratings of 0.5-5 stars). The cells are timed interleaved,
`--rounds` times, and the median is printed with the ratio to pooling at the same L.
"""

from __future__ import annotations

import os

# As the image serves: one BLAS thread (Dockerfile); set before NumPy loads BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.harness.results import begin_run
from service.towers import Towers, load_towers

GOAL_US = 300.0  # issue 26: the sequential tower at L = 50
GOAL_LENGTH = 50
console = Console(width=120)


def at_length(towers: Towers, length: int) -> Towers:
    """The same towers serving histories of `length` events (position table cycled to it)."""
    params = dict(towers.user_params)
    position = params["position"]
    params["position"] = np.resize(position, (length, *position.shape[1:])).astype(np.float32)
    return dataclasses.replace(towers, history_length=length, user_params=params)


def per_call_us(fn: Callable[[], object], seconds: float = 0.3) -> float:
    """Mean µs of one call over a batch lasting about `seconds` (after a warm-up call)."""
    fn()
    started = time.perf_counter()
    fn()
    repeat = max(20, int(seconds / max(time.perf_counter() - started, 1e-6)))
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def measure(
    models: dict[str, Towers], lengths: list[int], rounds: int, seed: int = 0
) -> dict[tuple[str, int], float]:
    """Median µs per `embed_user` call of each (model, L), the cells interleaved each round."""
    rng = np.random.default_rng(seed)
    calls: dict[tuple[str, int], Callable[[], object]] = {}
    for name, towers in models.items():
        catalog = np.load(towers.directory / "movie_vectors.npy")
        for length in lengths:
            served = at_length(towers, length)
            history = catalog[rng.integers(0, len(catalog), length)]
            weights = rng.integers(1, 11, length).astype(np.float32) / 10  # 0.5-5 stars
            calls[name, length] = partial(served.embed_user, history, weights)
    samples: dict[tuple[str, int], list[float]] = {cell: [] for cell in calls}
    for _ in range(rounds):
        for cell, call in calls.items():
            samples[cell].append(per_call_us(call))
    return {cell: statistics.median(values) for cell, values in samples.items()}


def table(figures: dict[tuple[str, int], float], lengths: list[int]) -> Table:
    result = Table(title="User tower per request (Towers.embed_user, NumPy, 1 thread), µs")
    result.add_column("L", justify="right")
    result.add_column("pooling µs", justify="right")
    result.add_column("sequential µs", justify="right")
    result.add_column("sequential / pooling", justify="right")
    for length in lengths:
        pooling, sequential = figures["pooling", length], figures["sequential", length]
        result.add_row(
            str(length), f"{pooling:.0f}", f"{sequential:.0f}", f"{sequential / pooling:.2f}x"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pooling", type=Path, required=True, help="A pooling model version.")
    parser.add_argument("--sequential", type=Path, required=True, help="A sequential version.")
    parser.add_argument("--lengths", default="50,200")
    parser.add_argument("--rounds", type=int, default=5)
    args, run = begin_run(parser)
    lengths = [int(x) for x in args.lengths.split(",")]
    models = {
        "pooling": load_towers(args.pooling, "latest"),
        "sequential": load_towers(args.sequential, "latest"),
    }
    for name, towers in models.items():
        kind = towers.manifest["config"].get("user_tower", "pooling")
        if kind != name:
            parser.error(f"--{name} {towers.directory} is a {kind} model")
    figures = measure(models, lengths, args.rounds)
    result = table(figures, lengths)
    console.print(result)
    sequential = figures.get(("sequential", GOAL_LENGTH))
    notes = [
        f"Median of {args.rounds} interleaved rounds; L = {max(lengths)} uses the L = "
        f"{models['sequential'].history_length} models with their position table cycled to that "
        "length (a call's cost depends on the shapes only)."
    ]
    if sequential is not None:
        met = "met" if sequential <= GOAL_US else "NOT met"
        notes.append(
            f"Goal: sequential <= {GOAL_US:.0f} µs at L = {GOAL_LENGTH}: "
            f"{sequential:.0f} µs, {met}."
        )
    console.print(*notes)
    run.record("user_tower", result, notes=notes)


if __name__ == "__main__":
    main()

"""Index benchmark: exact vs IVF variants per catalog size, with recall@10 vs exact printed
every run, so the ANN threshold, the IVF layout and `nprobe` are read off a measurement.

    .venv/bin/python -m bench.index [--sizes 10000,30000,100000,300000,1000000]
        [--variants flat4,pq4,pq8]

Variants: `CODES:C` is C x sqrt(N) cells holding CODES (a FAISS factory name: Flat, SQ8,
SQfp16, PQ32x4fs...); codes other than Flat re-score their best R x k exactly (`CODES:C:R`,
default R from IndexParams).

Vectors are the clustered synthetic catalog (bench/synthetic_catalog.py); queries are catalog
vectors plus noise, like a user vector near one taste. One OpenMP thread, as served.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.harness.recall import queries_near, recall
from bench.harness.results import begin_run
from bench.synthetic_catalog import clustered_vectors
from service.index.live import BaseIndex, IndexParams, MovieMeta, exact_neighbours, set_threads

NPROBES = (16, 32, 64, 128, 256, 512)
RECALL_GOAL = 0.99
console = Console(width=160)


def per_call_us(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Median of five timed batches, each about a fifth of `seconds` (the cores are shared)."""
    fn()
    started = time.perf_counter()
    fn()
    once = max(time.perf_counter() - started, 1e-6)
    repeat = max(5, int(seconds / 5 / once))
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        samples.append((time.perf_counter() - started) / repeat * 1e6)
    return float(np.median(samples))


def variant_params(name: str) -> IndexParams:
    """`Flat:4`, `SQ8:8`, `SQ8:4:10`: see the module docstring."""
    codes, cells, *rerank = name.split(":")
    return IndexParams(
        ann_threshold=0,
        ivf_cells_per_sqrt=float(cells),
        ivf_codes=codes,
        ivf_rerank=int(rerank[0]) if rerank else IndexParams().ivf_rerank,
    )


def measure(
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    nprobes: tuple[int, ...],
    params: IndexParams,
) -> dict[str, float]:
    n = len(vectors)
    ids = [f"s{i}" for i in range(n)]
    meta = [MovieMeta("t", (), None)] * n
    row: dict[str, float] = {}
    started = time.perf_counter()
    ivf = BaseIndex.build(ids, vectors, meta, params)
    row["build s"] = time.perf_counter() - started  # training, adding, measuring nprobe
    row["nlist"] = ivf.faiss_index.nlist
    row["served nprobe"] = ivf.faiss_index.nprobe  # what the build chose from its own sample
    row["build recall"] = ivf.recall
    for nprobe in nprobes:
        if nprobe > ivf.faiss_index.nlist:
            continue
        ivf.faiss_index.nprobe = nprobe
        row[f"{nprobe} µs"] = per_call_us(partial(ivf.search, queries[0], 10))
        row[f"{nprobe} recall"] = recall(ivf, queries, truth)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    parser.add_argument("--variants", default="Flat:4,Flat:8,SQ8:4", help="IVF layouts.")
    args, run = begin_run(parser)
    set_threads(1)
    table = Table(title=f"Index search, one query, µs (recall@10 vs exact); goal ≥ {RECALL_GOAL}")
    columns = ("movies", "exact µs", "IVF", "nlist", "build s", *map(str, NPROBES))
    for column in (*columns, "served: nprobe, µs, recall (build's own)", "best"):
        table.add_column(column if not column.isdigit() else f"nprobe {column}")
    for n in (int(s) for s in args.sizes.split(",") if s):
        vectors = clustered_vectors(n)
        queries = queries_near(vectors, 200)
        truth = exact_neighbours(vectors, queries, 10)
        ids = [f"s{i}" for i in range(n)]
        exact = BaseIndex.build(ids, vectors, [MovieMeta("t", (), None)] * n, IndexParams(n))
        exact_us = per_call_us(partial(exact.search, queries[0], 10))
        del exact
        for variant in args.variants.split(","):
            row = measure(vectors, queries, truth, NPROBES, variant_params(variant))
            row["exact"] = exact_us
            add_row(table, n, variant, row)
            console.print(f"{n:,} {variant} measured")  # the big sizes take a while
    console.print(table)
    run.record("index", table)


def add_row(table: Table, n: int, variant: str, row: dict[str, float]) -> None:
    served = int(row["served nprobe"])
    cells = []
    best = ""
    for nprobe in NPROBES:
        if f"{nprobe} µs" not in row:
            cells.append("-")
            continue
        us, rec = row[f"{nprobe} µs"], row[f"{nprobe} recall"]
        cells.append(f"{us:,.0f} ({rec:.3f})")
        if not best and rec >= RECALL_GOAL:
            best = f"nprobe {nprobe}: {row['exact'] / us:.1f}x faster than exact"
    table.add_row(
        f"{n:,}",
        f"{row['exact']:,.0f}",
        variant,
        f"{row['nlist']:,.0f}",
        f"{row['build s']:.1f}",
        *cells,
        f"{served}, {row.get(f'{served} µs', float('nan')):,.0f}, "
        f"{row.get(f'{served} recall', float('nan')):.3f} ({row['build recall']:.3f})",
        best or "none reaches the goal",
    )


if __name__ == "__main__":
    main()

"""Import, one training epoch and evaluation at the size of a real catalog, on synthetic
MovieLens-format data (`bench.movielens_synth`): wall time, examples/s and peak memory per phase,
and how each grows per 5x ratings (the smaller size is the baseline of the larger).

    .venv/bin/python -m bench.training [--sizes 1000000,5000000] [--work var/bench-training]

Each phase runs in its own child process and reports its own peak resident memory (VmHWM), so
one phase's peak never hides another's:
- import: `import_movielens` into a throwaway redis-server on a free port (never 6379);
  the server's own peak memory is reported beside it;
- train: what `movie-recs train --epochs 1` runs (data -> 1 epoch -> export -> evaluation of the
  export), in one child: its peak is the "train + evaluate" peak; the epoch's seconds and
  examples/s, and the export + evaluation seconds are reported as the `evaluate` row;
- evaluate (not run by default): `evaluate_towers` alone on the exported model (`movie-recs
  evaluate`), for its own peak.
Datasets are generated once per size under --work and reused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.redisserver import redis_server

PHASES = ("import", "train", "evaluate")
console = Console()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dataset(work: Path, ratings: int) -> Path:
    from bench.movielens_synth import generate

    directory = work / f"synthetic-{ratings}"
    marker = directory / "counts.json"
    if not marker.exists():
        started = time.perf_counter()
        counts = generate(directory, ratings, seed=0)
        marker.write_text(json.dumps(counts))
        console.print(f"generated {counts} in {time.perf_counter() - started:.0f} s")
    return directory


# --- the phases, each run as `python -m bench.training phase NAME ...` in a child -------------


def phase_import(data: Path, url: str) -> dict[str, Any]:
    import asyncio

    from service.importer import import_movielens
    from service.movielens import read_movielens
    from service.store import open_store

    async def run() -> dict[str, Any]:
        started = time.perf_counter()
        parsed = read_movielens(data)
        store = await open_store(url)
        try:
            summary = await import_movielens(store, parsed)
        finally:
            await store.close()
        return {
            "seconds": time.perf_counter() - started,
            "events": summary.events_read,
            "stored": summary.events_stored,
        }

    return asyncio.run(run())


def phase_train(data: Path, out: Path) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from embeddings.config import TrainConfig
    from embeddings.data import load_dataset
    from embeddings.train import train

    started = time.perf_counter()
    lines: list[str] = []
    loaded = load_dataset(data)
    load_seconds = time.perf_counter() - started
    epoch_started: list[float] = []

    def log(line: str) -> None:
        lines.append(line)
        if "training examples" in line:
            epoch_started.append(time.perf_counter())
        print(line, file=sys.stderr, flush=True)

    result = train(loaded, out, config=TrainConfig(epochs=1), seed=0, verbose=2, log=log)
    epoch_line = next(line for line in lines if line.startswith("epoch 1/"))
    examples = int(next(line for line in lines if "training examples" in line).split()[0])
    epoch_seconds = float(epoch_line.split(": ")[1].split(" min")[0]) * 60
    return {
        "seconds": time.perf_counter() - started,
        "load_seconds": load_seconds,
        "epoch_seconds": epoch_seconds,
        "examples": examples,
        "examples_per_second": examples / epoch_seconds,
        "training_seconds": result.manifest["training_seconds"],
        "evaluate_seconds": result.manifest["total_seconds"] - result.manifest["training_seconds"],
        "model": str(result.directory),
        "metrics": result.manifest["metrics"],
    }


def phase_evaluate(data: Path, model: Path) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from embeddings.artifacts import load_towers
    from embeddings.data import load_dataset
    from embeddings.evaluate import evaluate_towers

    started = time.perf_counter()
    metrics = evaluate_towers(load_dataset(data), load_towers(model))
    return {"seconds": time.perf_counter() - started, "metrics": metrics}


def child(name: str, *args: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its last stdout line is the JSON result."""
    command = [sys.executable, "-m", "bench.training", "phase", name, *args]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def redis_peak_mb(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory_peak"]) / 2**20
    finally:
        client.close()


def run_size(work: Path, ratings: int, phases: tuple[str, ...]) -> dict[str, Any]:
    data = dataset(work, ratings)
    counts = json.loads((data / "counts.json").read_text())
    row: dict[str, Any] = {"ratings": counts["ratings"], "counts": counts}
    if "import" in phases:
        with redis_server() as url:
            row["import"] = child("import", str(data), url)
            row["import"]["redis_peak_mb"] = redis_peak_mb(url)
        console.print(f"{ratings:,}: import {row['import']}")
    model = work / f"artifacts-{ratings}"
    if "train" in phases:
        shutil.rmtree(model, ignore_errors=True)
        row["train"] = child("train", str(data), str(model))
        console.print(f"{ratings:,}: train {row['train']}")
    if "evaluate" in phases and model.exists():
        row["evaluate"] = child("evaluate", str(data), str(model))
        console.print(f"{ratings:,}: evaluate {row['evaluate']}")
    return row


def measures(row: dict[str, Any]) -> list[tuple[str, float, str, float | None, str]]:
    """(label, seconds, throughput, peak MB, memory note) of one size's phases."""
    out: list[tuple[str, float, str, float | None, str]] = []
    if "import" in row:
        done = row["import"]
        note = f"+ redis-server {done['redis_peak_mb']:,.0f} MB"
        rate = f"{row['ratings'] / done['seconds']:,.0f} ratings/s"
        out.append(("import into Redis", done["seconds"], rate, done["peak_rss_mb"], note))
    if "train" in row:
        done = row["train"]
        rate = f"{done['examples_per_second']:,.0f} examples/s"
        note = f"train + evaluate; command {done['wall_seconds'] / 60:,.1f} min"
        out.append(("train: one epoch", done["epoch_seconds"], rate, done["peak_rss_mb"], note))
        out.append(
            ("export + evaluate", done["evaluate_seconds"], "", None, "(in the train process)")
        )
    if "evaluate" in row:
        done = row["evaluate"]
        out.append(("evaluate alone", done["seconds"], "", done["peak_rss_mb"], ""))
    return out


def table(rows: list[dict[str, Any]]) -> Table:
    result = Table(title="By size; growth = factor per 5x ratings (time / peak memory)")
    for column in ("phase", "ratings", "seconds", "throughput", "peak RSS", "growth", "note"):
        result.add_column(column, justify="left" if column in ("phase", "note") else "right")
    previous: dict[str, tuple[int, float, float | None]] = {}
    for row in rows:
        for label, seconds, rate, peak, note in measures(row):
            growth = ""
            if label in previous:
                ratings, before_seconds, before_peak = previous[label]
                fives = math.log(row["ratings"] / ratings, 5) or 1.0
                growth = f"{(seconds / before_seconds) ** (1 / fives):.2f}x"
                if peak and before_peak:
                    growth += f" / {(peak / before_peak) ** (1 / fives):.2f}x"
            previous[label] = (row["ratings"], seconds, peak)
            memory = f"{peak:,.0f} MB" if peak else ""
            result.add_row(
                label, f"{row['ratings']:,}", f"{seconds:,.0f}", rate, memory, growth, note
            )
    return result


app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def main(
    context: typer.Context,
    sizes: Annotated[str, typer.Option(help="Ratings per dataset, comma-separated.")] = (
        "1000000,5000000"
    ),
    phases: Annotated[str, typer.Option(help="Which of import,train,evaluate.")] = ("import,train"),
    work: Annotated[Path, typer.Option(help="Datasets, models, results.")] = Path(
        "var/bench-training"
    ),
) -> None:
    """Run the phases at each size and print the table (results also in WORK/results-N.json)."""
    if context.invoked_subcommand is not None:
        return
    work.mkdir(parents=True, exist_ok=True)
    chosen = tuple(p for p in phases.split(",") if p in PHASES)
    rows = []
    for size in sizes.split(","):
        saved = work / f"results-{size}.json"
        row = json.loads(saved.read_text()) if saved.exists() else {}
        row.update(run_size(work.resolve(), int(size), chosen))  # phases not run: kept
        saved.write_text(json.dumps(row, indent=1))
        rows.append(row)
    console.print(table(rows))


@app.command()
def show(work: Annotated[Path, typer.Option()] = Path("var/bench-training")) -> None:
    """The table of every size measured so far under WORK (each size's latest run)."""
    found = [json.loads(f.read_text()) for f in work.glob("results-*.json")]
    console.print(table(sorted(found, key=lambda row: row["ratings"])))


@app.command()
def phase(name: str, data: Path, target: str) -> None:
    """One phase in this process (used by `main`); prints one JSON line."""
    run = {"import": phase_import, "train": phase_train, "evaluate": phase_evaluate}[name]
    result = run(data, target if name == "import" else Path(target))  # type: ignore[operator]
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app()

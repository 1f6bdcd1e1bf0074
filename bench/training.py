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
- fit (not run by default): the epoch's steps alone (data -> `max_steps` steps; no validation
  ranking, export or evaluation), for timing steps where the evaluation takes longer than them
  (25M); with `--baseline` it alternates with the baseline tree's, `--repeat` rounds;
- evaluate (not run by default): `evaluate_towers` alone on the exported model (`movie-recs
  evaluate`), for its own peak.
Datasets are generated once per size under --work and reused.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.harness.memory import peak_rss_mb
from bench.harness.redis import RedisServer
from bench.harness.results import WRITE_HELP, Run

PHASES = ("import", "train", "fit", "evaluate")
SECTIONS = {  # of docs/benchmarks.md, one a phase
    "import": "import",
    "train": "training",
    "fit": "training fit",
    "evaluate": "training evaluate",
}
console = Console(width=None if sys.stdout.isatty() else 200)  # a log file gets whole rows


def cpu_seconds() -> float:
    """CPU seconds of this process, every thread (getrusage): robust to a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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

    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens
    from service.store import open_store

    async def run() -> dict[str, Any]:
        started, cpu = time.perf_counter(), cpu_seconds()
        parsed = read_movielens(data)
        store = await open_store(url)
        try:
            summary = await import_movielens(store, parsed)
        finally:
            await store.close()
        return {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": cpu_seconds() - cpu,
            "events": summary.events_read,
            "stored": summary.events_stored,
        }

    return asyncio.run(run())


class StepClock:
    """Wall and CPU seconds (every thread: getrusage) from the end of an epoch's first step to
    the end of its last: the steady rate, without tracing, setup or the validation ranking."""

    def __init__(self) -> None:
        import keras

        clock = self

        class Callback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                clock.mark(batch)

        self.callback = Callback()
        self.first: tuple[float, float] | None = None
        self.last = (0.0, 0.0)
        self.steps = 0

    def mark(self, batch: int) -> None:
        now = (time.perf_counter(), cpu_seconds())
        if self.first is None:
            self.first = now
        self.last, self.steps = now, batch + 1
        if self.steps % 25 == 0:  # a long run under load shows where it is
            wall, cpu = self.seconds()
            print(
                f"step {self.steps}: {wall / (self.steps - 1):.2f} s, "
                f"{cpu / (self.steps - 1):.2f} CPU-s a step; peak {peak_rss_mb():,.0f} MB",
                file=sys.stderr,
                flush=True,
            )

    def seconds(self) -> tuple[float, float]:
        assert self.first is not None
        return self.last[0] - self.first[0], self.last[1] - self.first[1]


def phase_train(
    data: Path, out: Path, max_steps: int | None = None, refresh: int | None = None
) -> dict[str, Any]:
    """`max_steps`: run only this many steps of the epoch; its rate gives the epoch's time."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from embeddings.config import TrainConfig
    from embeddings.data import load_dataset
    from embeddings.train import train

    started = time.perf_counter()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        took = f"[{time.perf_counter() - started:,.0f} s, CPU {cpu_seconds():,.0f} s]"
        print(f"{took} {line} (peak {peak_rss_mb():,.0f} MB)", file=sys.stderr, flush=True)

    loaded = load_dataset(data)
    load_seconds = time.perf_counter() - started
    log(f"loaded {len(loaded.ratings):,} ratings")

    config = TrainConfig(epochs=1, history_refresh_steps=refresh)
    clock = StepClock()
    result = train(
        loaded,
        out,
        config=config,
        seed=0,
        verbose=2,
        log=log,
        max_steps=max_steps,
        callbacks=[clock.callback],
    )
    examples = int(next(line for line in lines if "training examples" in line).split()[0])
    steps = -(-examples // config.batch_size)
    wall, cpu = clock.seconds()
    timed = (clock.steps - 1) * config.batch_size  # examples after the first step
    return {
        "seconds": time.perf_counter() - started,
        "load_seconds": load_seconds,
        "steps": clock.steps,
        "steps_per_epoch": steps,
        "measured_seconds": wall,
        "epoch_seconds": wall * examples / timed,  # at the measured rate, the whole epoch
        "epoch_cpu_seconds": cpu * examples / timed,
        "examples": examples,
        "examples_per_second": timed / wall,
        "examples_per_cpu_second": timed / cpu,
        "training_seconds": result.manifest["training_seconds"],
        "evaluate_seconds": result.manifest["total_seconds"] - result.manifest["training_seconds"],
        "model": str(result.directory),
        "metrics": result.manifest["metrics"],
    }


def phase_fit(data: Path, max_steps: int, refresh: int | None = None) -> dict[str, Any]:
    """The first `max_steps` steps of an epoch, as `train` runs them, and nothing else."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from embeddings.config import TrainConfig
    from embeddings.data import load_dataset
    from embeddings.train import fit_steps, prepare

    started = time.perf_counter()
    config = TrainConfig(epochs=1, history_refresh_steps=refresh)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    prepared = prepare(load_dataset(data), config, seed=0)
    config = prepared.config
    clock = StepClock()
    fit_steps(prepared.trainer, prepared.examples, config, 0, max_steps, [clock.callback])
    examples = len(prepared.examples)
    wall, cpu = clock.seconds()
    timed = (clock.steps - 1) * config.batch_size
    return {
        "seconds": time.perf_counter() - started,
        "steps": clock.steps,
        "steps_per_epoch": -(-examples // config.batch_size),
        "measured_seconds": wall,
        "epoch_seconds": wall * examples / timed,
        "epoch_cpu_seconds": cpu * examples / timed,
        "examples": examples,
        "examples_per_second": timed / wall,
        "examples_per_cpu_second": timed / cpu,
        "wall_per_step": wall / (clock.steps - 1),
        "cpu_per_step": cpu / (clock.steps - 1),
    }


def fit_ab(
    data: Path, max_steps: int, baseline: Path | None, repeat: int, refresh: int | None = None
) -> dict[str, Any]:
    """The steps of this tree (and of `baseline`, alternating); the median round of each.

    `refresh` (history_refresh_steps) applies to this tree; the baseline runs its defaults."""
    rounds: dict[str, list[dict[str, Any]]] = {"fit": [], "fit_baseline": []}
    for _ in range(repeat):
        trees = [("fit_baseline", baseline)] if baseline else []
        for key, tree in [*trees, ("fit", None)]:
            option = ["--refresh", str(refresh)] if refresh is not None and tree is None else []
            done = child("fit", str(data), "-", "--max-steps", str(max_steps), *option, tree=tree)
            done["load_average"] = os.getloadavg()[0]
            rounds[key].append(done)
            console.print(
                f"{key}: {done['wall_per_step']:.3f} s, {done['cpu_per_step']:.3f} CPU-s a step "
                f"(load {done['load_average']:.1f})"
            )
    return {
        key: sorted(found, key=lambda r: r["wall_per_step"])[len(found) // 2]
        for key, found in rounds.items()
        if found
    }


def phase_evaluate(data: Path, model: Path) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from embeddings.artifacts import load_towers
    from embeddings.data import load_dataset
    from embeddings.evaluate import evaluate_towers

    started = time.perf_counter()
    metrics = evaluate_towers(load_dataset(data), load_towers(model))
    return {"seconds": time.perf_counter() - started, "metrics": metrics}


def child(name: str, *args: str, tree: Path | None = None) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its last stdout line is the JSON result.

    `tree`: run another checkout's code (the baseline of an A/B), with this environment."""
    command = [sys.executable, "-m", "bench.training", "phase", name, *args]
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, cwd=tree, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def import_ab(data: Path, baseline: Path | None, repeat: int) -> dict[str, Any]:
    """The import of this tree (and of `baseline`, alternating), each on a fresh redis-server;
    the median round of each."""
    rounds: dict[str, list[dict[str, Any]]] = {"import": [], "import_baseline": []}
    for _ in range(repeat):
        trees = [("import_baseline", baseline)] if baseline else []
        for key, tree in [*trees, ("import", None)]:
            with RedisServer() as redis:
                done = child("import", str(data), redis.url, tree=tree)
                done.update(redis_usage(redis.url))
            done.setdefault("cpu_seconds", None)  # an older tree does not measure it
            rounds[key].append(done)
            console.print(f"{key}: {done['seconds']:.1f} s, CPU {done['cpu_seconds']}")
    return {
        key: sorted(found, key=lambda r: r["seconds"])[len(found) // 2]
        for key, found in rounds.items()
        if found
    }


def redis_usage(url: str) -> dict[str, float]:
    """The server's peak memory and CPU seconds (its own INFO), for the import row."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        cpu = client.info("cpu")
        return {
            "redis_peak_mb": int(client.info("memory")["used_memory_peak"]) / 2**20,
            "redis_cpu_seconds": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        }
    finally:
        client.close()


def run_size(
    work: Path,
    ratings: int,
    phases: tuple[str, ...],
    max_steps: int | None = None,
    baseline: Path | None = None,
    repeat: int = 1,
    refresh: int | None = None,
) -> dict[str, Any]:
    data = dataset(work, ratings)
    counts = json.loads((data / "counts.json").read_text())
    row: dict[str, Any] = {"ratings": counts["ratings"], "counts": counts}
    if "import" in phases:
        row.update(import_ab(data, baseline, repeat))
        console.print(f"{ratings:,}: import {row['import']}")
    model = work / f"artifacts-{ratings}"
    if "train" in phases:
        shutil.rmtree(model, ignore_errors=True)
        steps = ["--max-steps", str(max_steps)] if max_steps else []
        steps += ["--refresh", str(refresh)] if refresh is not None else []
        row["train"] = child("train", str(data), str(model), *steps)
        console.print(f"{ratings:,}: train {row['train']}")
    if "fit" in phases:
        row.update(fit_ab(data, max_steps or 200, baseline, repeat, refresh))
    if "evaluate" in phases and model.exists():
        row["evaluate"] = child("evaluate", str(data), str(model))
        console.print(f"{ratings:,}: evaluate {row['evaluate']}")
    return row


@dataclass(frozen=True)
class Measure:
    phase: str  # of PHASES
    label: str
    seconds: float  # wall
    cpu_seconds: float | None  # this process's CPU (+ redis-server's for the import)
    rate: str
    peak_mb: float | None
    note: str


def measures(row: dict[str, Any]) -> list[Measure]:
    """One size's phases as table rows."""
    out: list[Measure] = []
    for key in ("import_baseline", "import"):
        if key not in row:
            continue
        done = row[key]
        cpu = done.get("cpu_seconds")
        note = f"+ redis-server {done['redis_peak_mb']:,.0f} MB"
        if cpu is not None:
            cpu += done["redis_cpu_seconds"]
            client, server = done["cpu_seconds"], done["redis_cpu_seconds"]
            note += f"; CPU: client {client:,.0f} s + redis {server:,.0f} s"
        rate = f"{row['ratings'] / done['seconds']:,.0f} ratings/s"
        label = "import into Redis" + (", baseline" if key == "import_baseline" else "")
        if key == "import" and "import_baseline" in row:
            rate += f" ({row['import_baseline']['seconds'] / done['seconds']:.2f}x baseline)"
        out.append(Measure("import", label, done["seconds"], cpu, rate, done["peak_rss_mb"], note))
    if "train" in row:
        done = row["train"]
        rate = f"{done['examples_per_second']:,.0f} examples/s"
        if "examples_per_cpu_second" in done:
            rate += f", {done['examples_per_cpu_second']:,.0f}/CPU-s"
        note = f"train + evaluate; command {done['wall_seconds'] / 60:,.1f} min"
        if done.get("steps", 0) < done.get("steps_per_epoch", 0):
            note += f"; EPOCH ESTIMATED from {done['steps']:,} of {done['steps_per_epoch']:,} steps"
        out.append(
            Measure(
                "train",
                "train: one epoch",
                done["epoch_seconds"],
                done.get("epoch_cpu_seconds"),
                rate,
                done["peak_rss_mb"],
                note,
            )
        )
        out.append(
            Measure(
                "train",
                "export + evaluate",
                done["evaluate_seconds"],
                None,
                "",
                None,
                "(in the train process)",
            )
        )
    for key in ("fit_baseline", "fit"):
        if key not in row:
            continue
        done = row[key]
        rate = f"{done['examples_per_second']:,.0f} examples/s, {done['wall_per_step']:.3f} s"
        rate += f" ({done['cpu_per_step']:.3f} CPU-s) a step"
        if key == "fit" and "fit_baseline" in row:
            rate += (
                f" ({row['fit_baseline']['epoch_seconds'] / done['epoch_seconds']:.2f}x baseline)"
            )
        note = f"EPOCH ESTIMATED from {done['steps']:,} of {done['steps_per_epoch']:,} steps"
        note += f"; load {done['load_average']:.1f}"
        label = "fit: one epoch" + (", baseline" if key == "fit_baseline" else "")
        out.append(
            Measure(
                "fit",
                label,
                done["epoch_seconds"],
                done["epoch_cpu_seconds"],
                rate,
                done["peak_rss_mb"],
                note,
            )
        )
    if "evaluate" in row:
        done = row["evaluate"]
        peak = done["peak_rss_mb"]
        out.append(Measure("evaluate", "evaluate alone", done["seconds"], None, "", peak, ""))
    return out


def table(rows: list[dict[str, Any]], phases: tuple[str, ...] = PHASES) -> Table:
    result = Table(title="By size; growth = factor per 5x ratings (wall / CPU / peak memory)")
    columns = ("phase", "ratings", "seconds", "CPU s", "throughput", "peak RSS", "growth", "note")
    for column in columns:
        result.add_column(column, justify="left" if column in ("phase", "note") else "right")
    previous: dict[str, tuple[int, Measure]] = {}
    for row in rows:
        for now in measures(row):
            if now.phase not in phases:
                continue
            growth = ""
            if now.label in previous:
                ratings, before = previous[now.label]
                fives = math.log(row["ratings"] / ratings, 5) or 1.0
                pairs = [
                    (now.seconds, before.seconds),
                    (now.cpu_seconds, before.cpu_seconds),
                    (now.peak_mb, before.peak_mb),
                ]
                growth = " / ".join(
                    f"{(a / b) ** (1 / fives):.2f}x" if a and b else "-" for a, b in pairs
                )
            previous[now.label] = (row["ratings"], now)
            result.add_row(
                now.label,
                f"{row['ratings']:,}",
                f"{now.seconds:,.0f}",
                f"{now.cpu_seconds:,.0f}" if now.cpu_seconds else "",
                now.rate,
                f"{now.peak_mb:,.0f} MB" if now.peak_mb else "",
                growth,
                now.note,
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
    max_steps: Annotated[
        int | None,
        typer.Option(help="Train only this many steps; the epoch is estimated from their rate."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Another checkout: its import and fit run alternating with this one's."),
    ] = None,
    repeat: Annotated[
        int, typer.Option(min=1, help="Import and fit rounds (the median is kept).")
    ] = 1,
    history_refresh_steps: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="TrainConfig.history_refresh_steps for train and fit (default: by catalog size).",
        ),
    ] = None,
    write: Annotated[bool, typer.Option(help=WRITE_HELP)] = True,
) -> None:
    """Run the phases at each size and print the table (results also in WORK/results-N.json);
    each phase run is written into docs/benchmarks.md, a section each."""
    if context.invoked_subcommand is not None:
        return
    run = Run.begin(write=write)
    work.mkdir(parents=True, exist_ok=True)
    chosen = tuple(p for p in phases.split(",") if p in PHASES)
    rows = []
    for size in sizes.split(","):
        saved = work / f"results-{size}.json"
        row = json.loads(saved.read_text()) if saved.exists() else {}
        row.update(
            run_size(
                work.resolve(),
                int(size),
                chosen,
                max_steps,
                baseline,
                repeat,
                history_refresh_steps,
            )
        )  # phases not run: kept
        saved.write_text(json.dumps(row, indent=1))
        rows.append(row)
    console.print(table(rows))
    for phase in chosen:
        measured = table(rows, (phase,))
        if measured.row_count:
            run.record(SECTIONS[phase], measured)


@app.command()
def show(work: Annotated[Path, typer.Option()] = Path("var/bench-training")) -> None:
    """The table of every size measured so far under WORK (each size's latest run)."""
    found = [json.loads(f.read_text()) for f in work.glob("results-*.json")]
    console.print(table(sorted(found, key=lambda row: row["ratings"])))


@app.command()
def phase(
    name: str,
    data: Path,
    target: str,
    max_steps: Annotated[int | None, typer.Option()] = None,
    refresh: Annotated[int | None, typer.Option()] = None,
) -> None:
    """One phase in this process (used by `main`); prints one JSON line."""
    if name == "import":
        result = phase_import(data, target)
    elif name == "train":
        result = phase_train(data, Path(target), max_steps, refresh)
    elif name == "fit":
        result = phase_fit(data, max_steps or 200, refresh)
    else:
        result = phase_evaluate(data, Path(target))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app()

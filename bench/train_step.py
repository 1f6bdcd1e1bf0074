"""Where one training step's time goes, at a dataset's real shape (catalog, vocabularies, batches).

    .venv/bin/python -m bench.train_step DATA_DIR [--steps 20] [--batch-size 2048]

Builds the trainer exactly as `embeddings.train.train` does (`prepare`), cuts real batches from
the examples, and times each piece of a step as its own `tf.function` over the same batches
(after one warm-up call each): wall and CPU seconds (getrusage, every thread) per call, median
over the batches. Pieces: batch assembly (NumPy), the movie-tower pass on the batch's movies
(forward; forward + gradients), the loss (forward; forward + gradients), the optimizer's update
given the gradients (the optimizer training picks), the whole Keras train step and, with the history
cache, its refresh (once every K steps). Run it on a quiet machine.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.harness.memory import peak_rss_mb
from bench.harness.results import WRITE_HELP, Run
from bench.training import cpu_seconds

app = typer.Typer(add_completion=False)


def clock(run: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one call (the first call, tracing, is not counted)."""
    run()
    walls, cpus = [], []
    for _ in range(calls):
        wall, cpu = time.perf_counter(), cpu_seconds()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


@app.command()
def main(
    data: Path,
    steps: Annotated[int, typer.Option(help="Batches timed per piece.")] = 20,
    batch_size: Annotated[int | None, typer.Option(help="Default: TrainConfig's.")] = None,
    determinism: Annotated[
        bool, typer.Option(help="TensorFlow op determinism, as training runs.")
    ] = True,
    write: Annotated[bool, typer.Option(help=WRITE_HELP)] = True,
) -> None:
    results = Run.begin(write=write)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from embeddings.config import TrainConfig
    from embeddings.data import load_dataset
    from embeddings.optimizer import optimizer_for
    from embeddings.train import prepare

    started = time.perf_counter()
    config = TrainConfig().with_overrides(batch_size=batch_size)
    keras.utils.set_random_seed(0)
    if determinism:
        tf.config.experimental.enable_op_determinism()
    prepared = prepare(load_dataset(data), config, seed=0)
    trainer, examples, config = prepared.trainer, prepared.examples, prepared.config
    prepared_line = (
        f"prepared in {time.perf_counter() - started:.0f} s: {len(examples):,} examples, "
        f"{trainer.num_movies:,} movies; batch {config.batch_size}; peak {peak_rss_mb():,.0f} MB"
    )
    print(prepared_line)
    trainer.compile(optimizer=optimizer_for(config))
    rng = np.random.default_rng(0)
    batches = [
        tuple(tf.constant(part) for part in batch)
        for batch in itertools.islice(examples.batches(config.batch_size, rng), steps + 1)
    ]
    trainer((batches[0][0], batches[0][1]))
    trainer.optimizer.build(trainer.trainable_variables)
    union = [len(np.unique(np.r_[h.numpy().ravel(), t.numpy()])) for h, _, t in batches]
    distinct = (
        f"distinct movies a batch (histories + targets, padding included): {np.mean(union):,.0f}"
    )
    print(distinct)

    cursor = iter(range(10**9))

    def compiled(function: Callable[..., Any]) -> Callable[..., Any]:
        return tf.function(function, reduce_retracing=True)  # type: ignore[no-any-return]

    def each(function: Callable[[tuple[Any, ...]], Any]) -> Callable[[], Any]:
        """A compiled piece called on the next batch each time."""
        run = compiled(function)
        return lambda: run(batches[next(cursor) % len(batches)])

    def loss(batch: tuple[Any, ...]) -> Any:
        return trainer.compute_batch_loss(batch, training=True)

    def gradients(batch: tuple[Any, ...]) -> Any:
        with tf.GradientTape() as tape:
            value = trainer.compute_batch_loss(batch, training=True)
        return tape.gradient(value, trainer.trainable_variables)

    fixed = compiled(gradients)(batches[0])

    def vectors(batch: tuple[Any, ...]) -> Any:
        return trainer._vectors(batch[0], batch[2], True)

    def vector_gradients(batch: tuple[Any, ...]) -> Any:
        with tf.GradientTape() as tape:
            histories, targets = trainer._vectors(batch[0], batch[2], True)
            value = tf.reduce_sum(histories) + tf.reduce_sum(targets)
        return tape.gradient(value, trainer.movie_tower.trainable_variables)

    def update() -> None:
        trainer.optimizer.apply(fixed, trainer.trainable_variables)

    def step(batch: tuple[Any, ...]) -> Any:
        return trainer.train_step(batch)

    pieces: dict[str, Callable[[], Any]] = {
        "batch assembly (NumPy)": lambda: examples.batch(
            examples.positions[rng.integers(0, len(examples), config.batch_size)]
        ),
        "movie vectors of the batch: forward": each(vectors),
        "movie vectors of the batch: + gradients": each(vector_gradients),
        "loss: forward": each(loss),
        "loss: forward + gradients": each(gradients),
        "optimizer update": compiled(update),
        "whole train step": each(step),
    }
    if trainer.history_refresh_steps:  # once every K steps, inside the step
        pieces[f"history cache refresh (every {trainer.history_refresh_steps} steps)"] = compiled(
            trainer.refresh_history_cache
        )
    table = Table(title=f"A training step's pieces: medians of {steps} calls, one batch each")
    table.add_column("piece")
    table.add_column("wall ms", justify="right")
    table.add_column("CPU ms", justify="right")
    for name, run in pieces.items():
        wall, cpu = clock(run, steps)
        print(f"{name:<40} {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms CPU")  # as it goes
        table.add_row(name, f"{wall * 1000:.1f}", f"{cpu * 1000:.1f}")
    peak = f"peak {peak_rss_mb():,.0f} MB"
    Console().print(table)
    print(peak)
    results.record("train_step", table, notes=[prepared_line, distinct, peak])


if __name__ == "__main__":
    app()

"""`movie-recs train` and `movie-recs evaluate` (also `python -m embeddings`); TF loads lazily."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from embeddings.data import BUNDLED_DATA

DataOption = Annotated[
    Path, typer.Option("--data", help="A MovieLens-format directory (ratings.csv, movies.csv).")
]


def train_command(
    data: DataOption = BUNDLED_DATA,
    out: Annotated[
        Path, typer.Option("--out", help="Artifacts directory; the version goes in a subdirectory.")
    ] = Path("artifacts"),
    seed: Annotated[
        int, typer.Option("--seed", help="Same data, config and seed: same model.")
    ] = 0,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Maximum epochs (early stopping).")
    ] = None,
    history_refresh_steps: Annotated[
        int | None,
        typer.Option(
            "--history-refresh-steps",
            min=0,
            help="K > 0: history vectors from a cache refreshed every K steps, the movie tower "
            "on targets only (2.5x faster steps at 25M ratings, ~8% lower validation NDCG on "
            "ml-latest-small); 0: through the tower every step. Default: 10 from 20,000 "
            "trained movies, else 0.",
        ),
    ] = None,
    user_tower: Annotated[
        str | None,
        typer.Option(
            "--user-tower",
            help="pooling: attention pooling of the history; sequential: causal self-attention "
            "over it, the rating an input (embeddings/README.md). Default: the config's.",
        ),
    ] = None,
    negatives: Annotated[
        str | None,
        typer.Option(
            "--negatives",
            help="in_batch: each user against the batch's targets (log-q corrected); catalog: "
            "a full softmax over every trained movie (2x the step at ml-latest-small, lower "
            "validation NDCG there: embeddings/README.md). Default: the config's.",
        ),
    ] = None,
    eval_events: Annotated[
        int | None,
        typer.Option(
            "--eval-events",
            min=1,
            help="Events held out per user for validation and again for test (1: the last one; "
            "5: five test cases per user, a tighter interval, less to train on).",
        ),
    ] = None,
) -> None:
    """Train the two-tower model, evaluate it and publish it as artifacts/<version>/ + latest."""
    console = Console()
    with _friendly_errors():
        from embeddings.config import TrainConfig
        from embeddings.data import DataError, load_dataset
        from embeddings.report import data_table, metrics_table

        started = time.perf_counter()
        dataset = load_dataset(data)
        console.print(data_table(dataset.report))
        quiet_tensorflow()
        from embeddings.train import train

        if user_tower not in (None, "pooling", "sequential"):
            raise DataError(f"--user-tower {user_tower}: pooling or sequential")
        if negatives not in (None, "in_batch", "catalog"):
            raise DataError(f"--negatives {negatives}: in_batch or catalog")
        config = TrainConfig().with_overrides(
            epochs=epochs,
            history_refresh_steps=history_refresh_steps,
            user_tower=user_tower,
            negatives=negatives,
            eval_events=eval_events,
        )
        result = train(dataset, out, config=config, seed=seed, log=console.print)
        console.print(metrics_table(result.manifest["metrics"], config.top_k))
        console.print(
            f"model {result.manifest['version']} -> {result.directory} "
            f"(training {result.manifest['training_seconds']:.0f} s, "
            f"total {time.perf_counter() - started:.0f} s)"
        )


def evaluate_command(
    data: DataOption = BUNDLED_DATA,
    model: Annotated[
        Path,
        typer.Option("--model", help="A version directory, or an artifacts directory (latest)."),
    ] = Path("artifacts"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object only.")] = False,
) -> None:
    """Evaluate an exported model against the popularity and co-occurrence baselines."""
    console = Console(stderr=as_json)
    with _friendly_errors():
        from embeddings.artifacts import resolve_model_dir
        from embeddings.data import load_dataset
        from embeddings.report import metrics_table

        version_dir = resolve_model_dir(model)
        dataset = load_dataset(data)
        quiet_tensorflow()
        from embeddings.artifacts import load_towers
        from embeddings.evaluate import evaluate_towers

        towers = load_towers(version_dir)
        if dataset.content_hash() != towers.manifest["data_hash"]:
            console.print(
                "[yellow]this data is not the data the model was trained on: "
                "test movies may have been training movies.[/yellow]"
            )
        metrics = evaluate_towers(dataset, towers)
        if as_json:
            typer.echo(json.dumps(metrics))
        else:
            console.print(metrics_table(metrics, towers.manifest["config"]["top_k"]))


def add_numpy_towers_command(
    model: Annotated[
        Path,
        typer.Option("--model", help="A version directory, or an artifacts directory (latest)."),
    ] = Path("artifacts"),
    data: DataOption = BUNDLED_DATA,
) -> None:
    """Add the NumPy movie tower and probe to a version exported before the service dropped
    TensorFlow (checked against its SavedModels over the --data catalog, as export checks)."""
    console = Console()
    with _friendly_errors():
        from embeddings.artifacts import resolve_model_dir
        from embeddings.data import load_dataset

        version_dir = resolve_model_dir(model)
        movies = load_dataset(data).movies
        quiet_tensorflow()
        from embeddings.export import add_numpy_towers

        gap = add_numpy_towers(version_dir, movies)
        console.print(
            f"{version_dir}: NumPy towers added, largest gap to the SavedModels {gap:.1e} "
            f"over {len(movies)} movies and the odd inputs"
        )


class _friendly_errors:
    """Known input problems end in one red line and exit code 2, without a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        from embeddings.artifacts import ArtifactError, ExportError
        from embeddings.data import DataError

        if isinstance(error, DataError | ArtifactError | ExportError):
            Console(stderr=True).print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(2) from None
        if isinstance(error, ModuleNotFoundError) and error.name in ("tensorflow", "keras"):
            Console(stderr=True).print(
                "[red]error:[/red] training needs TensorFlow, which the serving install leaves "
                "out: install the `train` extra (`uv sync --extra train`, or the image's "
                "retrain target)",
                highlight=False,
            )
            raise typer.Exit(2) from None


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up logging is noise for a CLI user (set before TF is imported).

    This drops TF's own INFO and WARNING lines; the oneDNN notice logged through absl before
    its logging is initialised ignores every setting in TF 2.21 (tensorflow/tensorflow#100442)
    short of disabling oneDNN, which would change the numbers, so it stays.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

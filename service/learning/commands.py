"""`movie-recs retrain`: the command and its report. TensorFlow and the store load inside it."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from embeddings.cli import quiet_tensorflow
from service.config import Settings
from service.terminal import console, fail

if TYPE_CHECKING:
    from service.learning.retrain import Outcome


def retrain_command(
    seed: Annotated[
        int, typer.Option("--seed", help="Same data, config and seed: same model.")
    ] = 0,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Maximum epochs (early stopping).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Train and score only: publish and promote nothing.")
    ] = False,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Publish and cache the candidate; never promote.")
    ] = False,
    store_url: Annotated[str | None, typer.Option(help="Overrides MOVIE_RECS_STORE_URL.")] = None,
    config_json: Annotated[
        str | None,
        typer.Option(
            "--config-json",
            hidden=True,
            help="TrainConfig fields to override, as a JSON object (tests train small with it).",
        ),
    ] = None,
) -> None:
    """Train on what the store holds now, compare with the serving model, publish, promote.

    The candidate is promoted when its NDCG@10 is at least the serving model's minus
    MOVIE_RECS_GATE_TOLERANCE on the same cases. Exit code 0: promoted, already serving, or told
    not to promote; 1: not promoted (the gate refused it, or the serving model changed during
    the run); 2: the run could not be done.
    """
    quiet_tensorflow()  # before anything imports TensorFlow
    from embeddings.artifacts import ArtifactError
    from embeddings.config import TrainConfig
    from embeddings.data import DataError
    from embeddings.registry import RegistryError
    from service.learning.dataset import CutError
    from service.learning.gate import GateError
    from service.learning.retrain import Options, RetrainError, retrain
    from service.store import StoreError

    try:
        overrides = json.loads(config_json) if config_json else {}
        if not isinstance(overrides, dict):
            raise ValueError("not a JSON object")
        config = TrainConfig().with_overrides(**overrides).with_overrides(epochs=epochs)
    except (ValueError, TypeError) as exc:
        raise fail(f"--config-json: {exc}") from None
    settings = Settings(store_url=store_url) if store_url else Settings()
    options = Options(seed=seed, config=config, dry_run=dry_run, promote=not no_promote)
    try:
        outcome = asyncio.run(retrain(settings, options, log=console.print))
    except (
        ArtifactError,
        CutError,
        DataError,
        GateError,
        RegistryError,
        RetrainError,
        StoreError,
    ) as exc:
        raise fail(str(exc)) from None
    print_report(console, outcome)
    raise typer.Exit(outcome.exit_code)


def print_report(console: Console, outcome: Outcome) -> None:
    """The gate's table, its verdict and why, what was done, and the time by phase."""
    from embeddings.report import data_table

    verdict, cut = outcome.verdict, outcome.cut
    if outcome.data_report:
        console.print(data_table(outcome.data_report))
    k = verdict.k
    table = Table(title=f"The gate: each user's last event, ranked among all {cut.movies:,} movies")
    table.add_column("")
    table.add_column(f"candidate {outcome.version}", justify="right")
    table.add_column(f"serving {outcome.serving.version}", justify="right")
    table.add_row(f"NDCG@{k}", f"{verdict.candidate.ndcg:.4f}", f"{verdict.serving.ndcg:.4f}")
    table.add_row(f"HR@{k}", f"{verdict.candidate.hit_rate:.4f}", f"{verdict.serving.hit_rate:.4f}")
    table.add_row("test cases", f"{verdict.candidate.cases:,}", f"{verdict.serving.cases:,}")
    console.print(table)
    mark = "[green]passed[/]" if verdict.passed else "[red]refused[/]"
    console.print(f"gate {mark}: {verdict.reason}", highlight=False)
    console.print(
        f"data cut: sequence {cut.sequence}, {cut.movies:,} movies, {cut.users:,} users, "
        f"{cut.events:,} events at or before {cut.to_manifest()['time']}",
        highlight=False,
    )
    console.print(f"{outcome.version}: {outcome.published}", highlight=False)
    if outcome.cached:
        console.print(f"{outcome.cached:,} movie vectors written to the store's cache")
    console.print(outcome.decision, highlight=False)
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.phases.items())
    console.print(f"time: {phases}; total {sum(outcome.phases.values()):.1f} s", highlight=False)

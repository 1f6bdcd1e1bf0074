"""The `movie-recs` command line: one Typer app; each command's heavy imports stay inside it."""

from __future__ import annotations

import typer

from embeddings.cli import evaluate_command, train_command

app = typer.Typer(
    name="movie-recs",
    help="A stateful embedding recommender: import data, train, serve, update the catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command("train")(train_command)
app.command("evaluate")(evaluate_command)

"""`movie-recs train` and `movie-recs evaluate`, registered by service.cli; TF loads lazily."""

from __future__ import annotations

import typer


def train_command() -> None:
    """Train the two-tower model (not implemented yet)."""
    raise typer.Exit(1)


def evaluate_command() -> None:
    """Evaluate a trained model (not implemented yet)."""
    raise typer.Exit(1)

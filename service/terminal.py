"""What every `movie-recs` command prints with: one console, one error console, one way to fail.

Its own module so command modules beside cli.py (models, retrain) share them without importing
the app that registers them.
"""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an expected failure as one red line; the caller raises the returned Exit."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)

"""The `movie-recs` command line: one Typer app; each command's heavy imports stay inside it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from embeddings.cli import evaluate_command, train_command
from service.config import BUNDLED_DATA, Settings

app = typer.Typer(
    name="movie-recs",
    help="A stateful embedding recommender: import data, train, serve, update the catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

app.command("train")(train_command)
app.command("evaluate")(evaluate_command)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an expected failure as one red line; the caller raises the returned Exit."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


async def _import(settings: Settings, directory: Path) -> None:
    from service.importer import import_movielens
    from service.movielens import DatasetError, read_movielens
    from service.store import StoreError, open_store

    try:
        data = read_movielens(directory)
    except DatasetError as exc:
        raise fail(str(exc)) from None
    try:
        store = await open_store(
            settings.store_url,
            activity_max_events=settings.activity_max_events,
            changelog_max_len=settings.changelog_max_len,
        )
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        total = len(data.movies) + data.event_count
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"importing into {settings.store_url}", total=total)
            summary = await import_movielens(store, data, lambda n: progress.advance(task, n))
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        await store.close()

    for bad in data.bad_rows[:20]:
        errors.print(f"[yellow]skipped[/] {bad.file}:{bad.line}: {bad.reason}", highlight=False)
    if len(data.bad_rows) > 20:
        errors.print(f"[yellow]… and {len(data.bad_rows) - 20} more skipped rows[/]")
    table = Table(title=f"Imported {directory}", show_header=False)
    table.add_row("movies in store", f"{summary.movies:,}")
    table.add_row("movies changed by this run", f"{summary.movies_changed:,}")
    table.add_row("users", f"{summary.users:,}")
    table.add_row("rating events read", f"{summary.events_read:,}")
    table.add_row(
        f"events kept (newest {settings.activity_max_events} per user)",
        f"{summary.events_stored:,}",
    )
    table.add_row("bad rows skipped", f"{len(data.bad_rows):,}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


@app.command("import-movielens")
def import_movielens_command(
    directory: Annotated[
        Path, typer.Argument(help="A directory in the MovieLens-latest CSV format.")
    ] = BUNDLED_DATA,
    store_url: Annotated[str | None, typer.Option(help="Overrides MOVIE_RECS_STORE_URL.")] = None,
) -> None:
    """Import movies, tags and ratings into the store. Running it twice changes nothing."""
    settings = Settings(**({"store_url": store_url} if store_url else {}))
    asyncio.run(_import(settings, directory))


@app.command("demo")
def demo_command() -> None:
    """Import the bundled MovieLens into the store if it is empty, and say what it holds."""
    from service.store import StoreError, open_store

    settings = Settings()

    async def run() -> None:
        try:
            store = await open_store(settings.store_url)
            movies = await store.count_movies()
            await store.close()
        except StoreError as exc:
            raise fail(str(exc)) from None
        if movies == 0:
            await _import(settings, settings.data_dir)
        else:
            console.print(f"{settings.store_url} already holds {movies:,} movies; not importing.")
        console.print("[yellow]Serving is not built yet: the demo stops after the import.[/]")

    asyncio.run(run())

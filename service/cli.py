"""The `movie-recs` command line: one Typer app; each command's heavy imports stay inside it."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from embeddings.cli import (
    add_numpy_towers_command,
    evaluate_command,
    quiet_tensorflow,
    train_command,
)
from embeddings.data import BUNDLED_DATA
from service.config import Settings
from service.experiments_cli import experiments_app
from service.learning.commands import retrain_command
from service.models_cli import models_app
from service.terminal import console, errors, fail

app = typer.Typer(
    name="movie-recs",
    help="A stateful embedding recommender: import data, train, serve, update the catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("add-numpy-towers")(add_numpy_towers_command)
app.command("retrain")(retrain_command)
app.add_typer(models_app, name="models")
app.add_typer(experiments_app, name="experiments")


async def _import(settings: Settings, directory: Path) -> None:
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import DatasetError, read_movielens
    from service.store import StoreError, store_from_settings

    try:
        data = read_movielens(directory)
    except DatasetError as exc:
        raise fail(str(exc)) from None
    try:
        store = await store_from_settings(settings)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        total = len(data.movies) + data.rating_rows
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
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
    settings = Settings(store_url=store_url) if store_url else Settings()
    asyncio.run(_import(settings, directory))


DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8000


def log_config() -> dict[str, Any]:
    """uvicorn's logging plus the service's own loggers: lifecycle lines as text, and one JSON
    line per request (`service.requests`) in place of uvicorn's access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(levelname)s:     %(name)s: %(message)s"}
    config["handlers"]["service"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["service"] = {"handlers": ["service"], "level": "INFO", "propagate": False}
    return config


def uvicorn_options(workers: int = 1) -> dict[str, Any]:
    """The production server settings (the Dockerfile's CMD uses the same values).

    No `limit_concurrency`: uvicorn counts open connections against it, so idle keep-alive
    clients would refuse every request; the app limits requests in progress instead
    (`MOVIE_RECS_MAX_IN_FLIGHT`), and the protocol puts a deadline on reading headers.
    """
    from service.api.http_protocol import HeaderDeadlineProtocol

    return {
        "log_config": log_config(),
        "http": HeaderDeadlineProtocol,
        "timeout_keep_alive": 75,  # longer than the ALB's 60 s idle timeout
        "timeout_graceful_shutdown": 20,  # well inside ECS's 30 s stop timeout
        "access_log": False,  # per-route metrics instead of a log line per request
        "lifespan": "on",  # a model or store that fails to load fails startup
        "workers": workers,
    }


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = DEMO_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEMO_PORT,
    workers: Annotated[int, typer.Option(min=1, help="Processes; each holds its own index.")] = 1,
) -> None:
    """Serve the API with the settings from the environment (MOVIE_RECS_*).

    On SIGTERM uvicorn stops accepting, finishes in-flight requests, runs the lifespan's
    shutdown (which stops the refresher), then re-raises the signal: the handler below turns
    that into exit code 0, which is what ECS and compose expect of a clean stop.
    """
    import signal

    import uvicorn

    from service.api.access import load_access

    try:
        load_access(Settings())  # fail closed, with one line, before any worker starts
    except ValueError as exc:
        raise fail(str(exc)) from None
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "service.api.app:create_app", factory=True, host=host, port=port, **uvicorn_options(workers)
    )


def _demo_secret() -> str:
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@app.command("demo")
def demo_command(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = DEMO_PORT,
) -> None:
    """Import MovieLens into the store if empty, train if no model exists, then serve."""
    import os

    quiet_tensorflow()  # before anything imports TensorFlow: the demo's first screen

    from embeddings.artifacts import ArtifactError, resolve_model_dir
    from service.store import StoreError, store_from_settings

    settings = Settings()

    async def import_if_empty() -> None:
        try:
            store = await store_from_settings(settings)
            movies = await store.count_movies()
            await store.close()
        except StoreError as exc:
            raise fail(str(exc)) from None
        if movies == 0:
            await _import(settings, settings.data_dir)
        else:
            console.print(f"{settings.store_url} already holds {movies:,} movies; not importing.")

    asyncio.run(import_if_empty())
    try:
        resolve_model_dir(settings.artifacts_dir)
        console.print(f"using the trained model in {settings.artifacts_dir}/")
    except ArtifactError:
        console.print(f"no model in {settings.artifacts_dir}/: training one (about 2 minutes)")
        train_command(data=settings.data_dir, out=settings.artifacts_dir)
    if not settings.webhook_secrets:
        os.environ["MOVIE_RECS_WEBHOOK_SECRETS"] = _demo_secret()
        console.print(
            "generated a webhook secret for this demo run (set MOVIE_RECS_WEBHOOK_SECRETS)"
        )
    os.environ.setdefault("MOVIE_RECS_PAGE", "true")  # the page at /; `serve` keeps it off
    if not settings.api_keys:  # a local demo: /v1 open on 127.0.0.1 (`serve` refuses this)
        os.environ.setdefault("MOVIE_RECS_AUTH_DISABLED", "true")
    secret = os.environ.get("MOVIE_RECS_WEBHOOK_SECRETS", "").split(",")[0]
    base = f"http://{DEMO_HOST}:{port}"
    console.print(
        f"\n[bold]Once it says 'Application startup complete', open {base}/ or try:[/]\n"
        f"  curl -s '{base}/v1/users/1/recommendations?k=5'\n"
        f"  curl -s '{base}/v1/users/1/recommendations?k=5&genres=Comedy&year_min=2000'\n"
        f"  curl -s -X POST {base}/v1/users/42/events -H 'content-type: application/json' "
        '-d \'{"movie_id": "1", "kind": "rate", "rating": 5}\'\n'
        f"  curl -s '{base}/v1/movies/1/similar?k=5'\n"
        f"  curl -s -X POST {base}/v1/recommendations -H 'content-type: application/json' "
        '-d \'{"history": [{"movie_id": "260"}], "k": 5}\'\n'
        f"  .venv/bin/movie-recs send-webhook examples/new-movie.json --url {base} "
        f"--secret '{secret}'\n"
        f"  curl -s '{base}/v1/movies/900001'\n"
        f"  (API docs: {base}/docs)\n",
        highlight=False,
        soft_wrap=True,  # keep each command on one line, so it can be copied
    )
    serve_command(host=DEMO_HOST, port=port, workers=1)


@app.command("send-webhook")
def send_webhook_command(
    file: Annotated[Path, typer.Argument(help="A JSON payload (one event or {'events': [...]}).")],
    url: Annotated[str, typer.Option(help="Service base URL.")] = f"http://{DEMO_HOST}:{DEMO_PORT}",
    secret: Annotated[
        str | None,
        typer.Option(help="whsec_… secret; default: the first of MOVIE_RECS_WEBHOOK_SECRETS."),
    ] = None,
    webhook_id: Annotated[
        str | None, typer.Option("--id", help="webhook-id; default: a new random one.")
    ] = None,
) -> None:
    """Sign a payload with Standard Webhooks and POST it to /v1/webhooks/catalog."""
    import httpx

    from service.ingest.webhook_signer import SigningError, post_webhook

    if secret is None:
        configured = Settings().webhook_secrets
        if not configured:
            raise fail("no secret: pass --secret or set MOVIE_RECS_WEBHOOK_SECRETS")
        secret = configured[0].get_secret_value()
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    try:
        response = post_webhook(url, secret, body, msg_id=webhook_id)
    except SigningError as exc:
        raise fail(f"cannot sign {file}: {exc}") from None
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    console.print(f"{response.status_code} {response.text}", highlight=False, soft_wrap=True)
    if response.status_code >= 400:
        raise typer.Exit(1)

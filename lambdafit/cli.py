"""`python -m lambdafit` (`make lambda-fit`): the tool's own command line.

The tool measures the service from outside and is not part of it: the product's `movie-recs`
does not know it, and the wheel and the image do not carry it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.config import Settings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console()


def fail(message: str) -> typer.Exit:
    """An expected failure as one red line on stderr (exit 2); the caller raises it."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


@app.callback(invoke_without_command=True)
def lambda_fit_command(
    ctx: typer.Context,
    sizes: Annotated[
        str, typer.Option(help="Synthetic catalog sizes, comma-separated.")
    ] = "10000,100000,1000000",
    out: Annotated[Path, typer.Option(help="Directory for the report and its plots.")] = Path(
        "reports"
    ),
    movielens: Annotated[bool, typer.Option(help="Also measure the MovieLens catalog.")] = True,
    container: Annotated[
        bool, typer.Option(help="Also start and measure the real server (movie-recs serve).")
    ] = True,
    cold_runs: Annotated[
        int, typer.Option(min=1, help="Cold starts (fresh processes) per catalog.")
    ] = 3,
    requests: Annotated[int, typer.Option(min=1, help="Warm requests per catalog and side.")] = 300,
    webhooks: Annotated[int, typer.Option(min=1, help="Webhooks sent to the container.")] = 5,
    work: Annotated[
        Path, typer.Option(help="Catalog stores (written anew each run) and logs.")
    ] = Path("var/lambda-fit"),
    redis_url: Annotated[
        str | None, typer.Option(help="Write each catalog to this Redis (emptied!) instead.")
    ] = None,
    render_only: Annotated[
        bool, typer.Option(help="Only re-render the report and plots from OUT/lambda-fit.json.")
    ] = False,
) -> None:
    """Measure why this service does not fit AWS Lambda; write lambda-fit.md and plots."""
    if ctx.invoked_subcommand is not None:
        return  # `cost`: the measurements are not rerun
    import sys

    from lambdafit.run import LambdaFitError, Options, run

    try:
        parsed = tuple(int(s.replace("_", "")) for s in sizes.split(",") if s.strip())
    except ValueError:
        parsed = ()
    if not parsed or min(parsed) < 100:
        raise fail(f"--sizes must be comma-separated integers of at least 100, not {sizes!r}")
    options = Options(
        sizes=parsed,
        out=out,
        work=work,
        movielens=movielens,
        container=container,
        cold_runs=cold_runs,
        requests=requests,
        webhooks=webhooks,
        redis_url=redis_url,
        render_only=render_only,
    )
    command = " ".join(["python -m lambdafit", *sys.argv[1:]])
    try:
        run(options, Settings(), command, say=lambda line: console.print(line, highlight=False))
    except LambdaFitError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {out / 'lambda-fit.md'}")


@app.command("cost")
def cost_command(
    out: Annotated[
        Path, typer.Option(help="Directory holding lambda-fit.json; the report is rewritten.")
    ] = Path("reports"),
) -> None:
    """Price each design from the recorded measurements and lambdafit/prices.toml (seconds).

    Re-measures only the serving dependencies (a listing of files), then
    rewrites lambda-fit.md, its cost section and table, and the plots; the ~6 minutes of
    measuring both designs are not repeated.
    """
    from lambdafit.run import LambdaFitError, cost

    try:
        cost(out)
    except LambdaFitError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {out / 'lambda-fit.md'} and {out / 'lambda-fit-cost.png'}")

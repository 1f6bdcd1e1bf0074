"""`movie-recs experiments create | stop | list | report`: the store's experiments, which every
replica reads (within `MOVIE_RECS_EXPERIMENT_POLL_SECONDS`) and assigns users from."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from service.config import Settings
from service.experiments.lifecycle import check_models, new_experiment, stop
from service.experiments.report import Report, build_report
from service.experiments.stats import Comparison
from service.model_source import own_version
from service.store import Store, StoreError, store_from_settings
from service.store.errors import UnknownExperiment
from service.store.records import STRATEGIES, Experiment, Variant
from service.terminal import console, fail

T = TypeVar("T")

experiments_app = typer.Typer(
    help="A/B experiments between strategies: create, stop, list, report.",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="The experiment's name (a-z 0-9 _ . -).")]


def _with_store(settings: Settings, call: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await store_from_settings(settings)
        try:
            return await call(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:  # unreachable store, a conflict, an unknown name, a bad definition
        raise fail(str(exc)) from None


def parse_variant(text: str) -> Variant:
    """`name:strategy[@model][:weight]`, e.g. `model:personalized:1` or
    `new:personalized@20261205-r2:1` (a registry version served to that variant)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise typer.BadParameter(f"{text!r}: want name:strategy[@model][:weight]")
    try:
        weight = float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError:
        raise typer.BadParameter(f"{text!r}: the weight must be a number") from None
    strategy, at, model = parts[1].partition("@")
    return Variant(parts[0], weight, strategy, model if at else None)


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _describe(experiment: Experiment) -> str:
    return ", ".join(f"{v.name}={v.label} ({v.weight:g})" for v in experiment.variants)


@experiments_app.command("create")
def create_command(
    name: NameArg,
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant",
            "-v",
            help=f"name:strategy[@model][:weight], strategy one of {', '.join(STRATEGIES)}; "
            "@model serves a registry version to that variant. The first is the control. Two "
            "or more.",
        ),
    ],
    days: Annotated[
        float | None, typer.Option(help="How long it assigns (default: the most allowed).")
    ] = None,
) -> None:
    """Start an experiment: every replica assigns users to its variants by a hash of
    (experiment, user id). One runs at a time."""
    settings = Settings()
    variants = [parse_variant(v) for v in variant]
    experiment = _with_store(settings, lambda store: _create(settings, store, name, variants, days))
    console.print(
        f"experiment {experiment.name} runs until {_when(experiment.ends_at)} UTC: "
        f"{_describe(experiment)}",
        highlight=False,
    )


async def _create(
    settings: Settings, store: Store, name: str, variants: list[Variant], days: float | None
) -> Experiment:
    experiment = new_experiment(settings, name, variants, days)
    if any(v.model is not None for v in variants):
        await check_models(settings, variants, await _present(settings, store))
    await store.create_experiment(experiment)
    return experiment


async def _present(settings: Settings, store: Store) -> set[str]:
    """Versions replicas have without the registry: the promoted one and the image's own."""
    found = {await store.serving_model(), await asyncio.to_thread(own_version, settings)}
    return {v for v in found if v is not None}


@experiments_app.command("stop")
def stop_command(name: NameArg) -> None:
    """Stop assigning: users get the default again; the counts stay for the report."""
    stopped = _with_store(Settings(), lambda store: stop(store, name))
    console.print(f"experiment {name} stopped at {_when(stopped.stopped_at)} UTC")


@experiments_app.command("list")
def list_command() -> None:
    """Every experiment kept, oldest first."""
    found = _with_store(Settings(), lambda store: store.experiments())
    table = Table(title="Experiments")
    for column in ("name", "variants", "created", "ends", "stopped", "running"):
        table.add_column(column)
    now = datetime.now(UTC).timestamp()
    for e in found:
        table.add_row(
            e.name,
            _describe(e),
            _when(e.created_at),
            _when(e.ends_at),
            _when(e.stopped_at),
            "yes" if e.active(now) else "",
        )
    console.print(table)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _lift(comparison: Comparison | None) -> str:
    if comparison is None:
        return "control"
    text = f"{comparison.lift:+.2%} [{comparison.ci_low:+.2%}, {comparison.ci_high:+.2%}]"
    return f"{text} p={comparison.p_value:.3g}"


@experiments_app.command("report")
def report_command(
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Per variant: users, exposures, attributed events, both rates and their lifts against
    the control with 95 % intervals and p-values; the sample ratio mismatch check."""
    settings = Settings()

    async def read(store: Store) -> Report:
        found = {e.name: e for e in await store.experiments()}
        if name not in found:
            raise UnknownExperiment(f"no experiment named {name[:80]!r}")
        counts = await store.experiment_counts(name)
        return build_report(found[name], counts, settings.experiment_min_users)

    report = _with_store(settings, read)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    table = Table(
        title=f"Experiment {report.experiment} ({'running' if report.running else 'ended'})"
    )
    for column in ("variant", "users", "exposures", "attributed", "per user", "lift per user",
                   "per exposure", "lift per exposure", "verdict"):  # fmt: skip
        table.add_column(column)
    for v in report.variants:
        table.add_row(
            f"{v.name} ({v.strategy if v.model is None else f'{v.strategy}@{v.model}'})",
            f"{v.users:,}",
            f"{v.exposures:,}",
            f"{v.attributed:,}",
            _percent(v.per_user_rate),
            _lift(v.per_user),
            _percent(v.per_exposure_rate),
            _lift(v.per_exposure),
            v.verdict or "-",
        )
    console.print(table)
    flag = "  SAMPLE RATIO MISMATCH" if report.srm else ""
    console.print(f"srm p-value {report.srm_p_value:.3g}{flag}; {report.note}", highlight=False)

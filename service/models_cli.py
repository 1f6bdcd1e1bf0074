"""`movie-recs models list | show | promote | rollback`: the registry's versions and the store's
serving pointer, which every replica follows (docs/ARCHITECTURE.md, "Where a model goes").

A version is promoted only when it is complete in the registry and its towers load and agree
(the SavedModels with the NumPy user tower): a replica would refuse it anyway, but an operator
should hear it now, not from a metric. The image's own model may be promoted back without being
in the registry: every replica carries it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from embeddings.artifacts import ArtifactError, resolve_model_dir
from embeddings.registry import RegistryError, open_registry
from service.config import Settings
from service.model_source import own_version
from service.store import UNCHECKED, Promotion, StoreError, Unchecked, store_from_settings
from service.terminal import console, fail
from service.towers import ModelLoadError, load_towers

models_app = typer.Typer(
    help="Model versions in the registry, and which one every replica serves.",
    no_args_is_help=True,
)

VersionArg = Annotated[str, typer.Argument(help="A version id (`models list`).")]


async def _pointer(settings: Settings) -> tuple[str | None, list[Promotion]]:
    store = await store_from_settings(settings)
    try:
        return await store.serving_model(), await store.model_history()
    finally:
        await store.close()


def _store_call(settings: Settings) -> tuple[str | None, list[Promotion]]:
    try:
        return asyncio.run(_pointer(settings))
    except StoreError as exc:
        raise fail(str(exc)) from None


def _ndcg(manifest: dict[str, Any]) -> str:
    gate = manifest.get("gate") or {}
    value = (gate.get("candidate") or {}).get("ndcg@10")
    if value is None:
        value = (manifest.get("metrics") or {}).get("model", {}).get("ndcg@10")
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


@models_app.command("list")
def list_command() -> None:
    """Every complete version in the registry, newest first; the one served is marked."""
    settings = Settings()
    serving, history = _store_call(settings)
    own = own_version(settings)
    try:
        versions = open_registry(settings.registry_url).versions()
    except RegistryError as exc:
        raise fail(str(exc)) from None
    served = {p.version for p in history}
    table = Table(title=f"Model versions in {settings.registry_url}")
    for column in ("version", "created", "NDCG@10", "parent", "gate", "serving"):
        table.add_column(column)
    for info in versions:
        manifest = info.manifest
        gate = manifest.get("gate") or {}
        verdict = "" if not gate else "passed" if gate.get("passed") else "refused"
        mark = (
            "← serving"
            if info.version == serving
            else "served before"
            if info.version in served
            else ""
        )
        table.add_row(
            info.version,
            info.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            _ndcg(manifest),
            str(manifest.get("parent") or "-"),
            verdict,
            mark,
        )
    console.print(table)
    if serving is None:
        console.print(f"no version promoted: replicas serve the image's own model ({own})")
    elif serving not in {v.version for v in versions}:
        console.print(f"serving {serving} (the image's own model, not in the registry)")


@models_app.command("show")
def show_command(version: VersionArg) -> None:
    """A version's manifest (data cut, training, gate, metrics) and whether it is complete."""
    settings = Settings()
    registry = open_registry(settings.registry_url)
    try:
        problems = registry.problems(version)
        manifest = registry.manifest(version) if not problems else {}
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if problems:
        raise fail(f"{version} is not usable: {'; '.join(problems)}")
    shown = {
        key: manifest[key]
        for key in ("version", "created", "parent", "data_cut", "training", "gate", "metrics")
        if key in manifest
    }
    console.print_json(json.dumps(shown, default=str))


def _check(settings: Settings, version: str) -> None:
    """Refuse a version a replica could not serve: incomplete, or towers that fail to load or
    to reproduce the export's probe (both checked by `load_towers`). The image's own model is
    checked from the artifacts instead."""
    own = own_version(settings)
    try:
        if version == own:
            load_towers(settings.artifacts_dir, settings.model_version)
        else:
            registry = open_registry(settings.registry_url)
            if problems := registry.problems(version):
                raise fail(f"{version} is not complete in the registry: {'; '.join(problems)}")
            directory = registry.fetch(version, settings.model_cache_dir)
            load_towers(directory.parent, directory.name)
    except (RegistryError, ModelLoadError) as exc:
        raise fail(f"{version} cannot be served: {exc}") from None


def _promote(
    settings: Settings, version: str, note: str, replacing: str | Unchecked | None = UNCHECKED
) -> Promotion:
    async def run() -> Promotion:
        store = await store_from_settings(settings)
        try:
            return await store.promote_model(version, note, replacing=replacing)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        raise fail(str(exc)) from None


def _say(promotion: Promotion) -> None:
    when = datetime.fromtimestamp(promotion.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    console.print(
        f"{when} UTC: every replica now moves from {promotion.previous or 'its own model'} to "
        f"{promotion.version} (each keeps serving the old one until the new index is built)",
        highlight=False,
    )


@models_app.command("publish")
def publish_command(
    directory: Annotated[
        Path, typer.Argument(help="A version directory (artifacts/<version>) or an artifacts dir.")
    ],
) -> None:
    """Publish a version trained elsewhere (`movie-recs train`) to the registry, once its towers
    load and reproduce their probe; then it can be promoted or named by an experiment."""
    settings = Settings()
    try:
        version_dir = resolve_model_dir(directory)
        load_towers(version_dir.parent, version_dir.name)
        version = open_registry(settings.registry_url).publish(version_dir)
    except (ArtifactError, RegistryError, ModelLoadError, OSError) as exc:
        raise fail(f"cannot publish {directory}: {exc}") from None
    console.print(f"published {version} to {settings.registry_url}", highlight=False)


@models_app.command("promote")
def promote_command(
    version: VersionArg,
    note: Annotated[str, typer.Option(help="Why, for the history.")] = "promoted by hand",
) -> None:
    """Point every replica at VERSION, once it is complete and its towers pass a load check."""
    settings = Settings()
    _check(settings, version)
    _say(_promote(settings, version, note))


@models_app.command("rollback")
def rollback_command() -> None:
    """Promote the version served before the current one."""
    settings = Settings()
    serving, history = _store_call(settings)
    if serving is None or not history:
        raise fail("nothing to roll back: no version was ever promoted")
    previous = history[0].previous or own_version(settings)
    if previous is None or previous == serving:
        raise fail(f"nothing to roll back to from {serving}")
    _check(settings, previous)
    # Only from the version it looked at: a promotion landing meanwhile is not undone blindly.
    _say(_promote(settings, previous, f"rollback from {serving}", replacing=serving))

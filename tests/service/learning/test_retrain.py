"""`retrain` end to end on a real store (SQLite and a redis-server), a local registry and tiny
models: what it publishes, caches and promotes, and when it refuses."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from typer.testing import CliRunner

from embeddings.registry import open_registry
from service.cli import app
from service.learning.retrain import Options, Outcome, retrain
from service.store import Store, open_store
from tests.service.learning.support import CONFIG, CONFIG_JSON, Seed, settings_for, version_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # each run trains a tiny model (~6 s)
runner = CliRunner()


def quiet(_: str) -> None:
    return None


@pytest.fixture
async def seeded(store_url: str, seed: Seed) -> AsyncIterator[Store]:
    """A store on each backend holding the seed, keeping up to 1,000 events a user."""
    store = await open_store(store_url)
    await seed.into(store)
    try:
        yield store
    finally:
        await store.close()


def shuffle_movie_vectors(directory: Path) -> None:
    """Spoil a candidate: each movie gets another movie's exported vector."""
    vectors = np.load(directory / "movie_vectors.npy")
    order = np.random.default_rng(0).permutation(len(vectors))
    np.save(directory / "movie_vectors.npy", vectors[order])


async def cached_vectors(store: Store, version: str) -> dict[str, np.ndarray]:
    catalog = {m.id: m.version async for batch in store.iter_movies() for m in batch}
    return await store.get_embeddings(version, catalog)


async def test_a_better_candidate_is_published_cached_and_promoted(
    seeded: Store, store_url: str, weak_artifacts: Path, tmp_path: Path
) -> None:
    settings = settings_for(store_url, weak_artifacts, tmp_path)

    outcome = await retrain(settings, Options(config=CONFIG), log=quiet)

    version = outcome.version
    assert (outcome.exit_code, outcome.promoted) == (0, True), outcome.decision
    assert await seeded.serving_model() == version
    assert (await seeded.model_history())[0].note.startswith("retrain: NDCG@10")
    manifest = open_registry(settings.registry_url).manifest(version)
    cut = manifest["data_cut"]
    assert {key: cut[key] for key in ("sequence", "movies", "users", "events")} == {
        "sequence": await seeded.head_seq(),
        "movies": await seeded.count_movies(),
        "users": await seeded.count_users(),
        "events": await seeded.count_events(),
    }
    assert manifest["parent"] == version_of(weak_artifacts)
    gate = manifest["gate"]
    assert gate["passed"] and gate["tolerance"] == 0.005
    assert gate["candidate"]["ndcg@10"] > gate["serving"]["ndcg@10"] + 0.03
    assert gate["candidate"]["cases"] == gate["serving"]["cases"] > 150
    assert manifest["training"]["config"]["epochs"] == 3
    assert manifest["training"]["package_version"] == "0.1.0"
    # every movie's vector under (this version, the movie's version at the cut)
    directory = open_registry(settings.registry_url).fetch(version, settings.model_cache_dir)
    exported = dict(
        zip(
            json.loads((directory / "movie_ids.json").read_text()),
            np.load(directory / "movie_vectors.npy"),
            strict=True,
        )
    )
    cached = await cached_vectors(seeded, version)
    assert sorted(cached) == sorted(exported) and len(cached) == manifest["data_cut"]["movies"]
    assert all(np.array_equal(cached[m], exported[m]) for m in cached)


async def test_a_spoiled_candidate_is_refused_and_the_pointer_stays(
    seeded: Store, store_url: str, good_artifacts: Path, tmp_path: Path
) -> None:
    good = version_of(good_artifacts)
    await seeded.promote_model(good, "the image's model")  # the registry lacks it: the image's
    settings = settings_for(store_url, good_artifacts, tmp_path)

    outcome: Outcome = await retrain(
        settings, Options(config=CONFIG, seed=1), log=quiet, before_scoring=shuffle_movie_vectors
    )

    assert (outcome.exit_code, outcome.promoted) == (1, False)
    assert outcome.decision.startswith("the gate refused it: candidate NDCG@10")
    assert outcome.serving.version == good and "image's own" in outcome.serving.source
    assert await seeded.serving_model() == good and len(await seeded.model_history()) == 1
    manifest = open_registry(settings.registry_url).manifest(outcome.version)
    assert manifest["gate"]["passed"] is False and manifest["parent"] == good
    assert manifest["gate"]["candidate"]["ndcg@10"] < manifest["gate"]["serving"]["ndcg@10"] - 0.03


def invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["retrain", "--config-json", CONFIG_JSON, *args], env=env)
    return result.exit_code, result.output


T = TypeVar("T")


def on_store(url: str, read: Callable[[Store], Awaitable[T]]) -> T:
    """`read(store)` on the store at `url`, from a test without an event loop (the CLI runs its
    own)."""

    async def run() -> T:
        store = await open_store(url)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture
def cli_env(sqlite_url: str, seed: Seed, weak_artifacts: Path, tmp_path: Path) -> dict[str, str]:
    """A seeded SQLite store, a registry, and the weak model as the image's, as the environment
    `movie-recs retrain` reads its settings from."""
    on_store(sqlite_url, seed.into)
    return {
        "MOVIE_RECS_STORE_URL": sqlite_url,
        "MOVIE_RECS_REGISTRY_URL": str(tmp_path / "registry"),
        "MOVIE_RECS_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "MOVIE_RECS_ARTIFACTS_DIR": str(weak_artifacts),
        "COLUMNS": "200",  # Rich wraps at the terminal's width
    }


def test_a_dry_run_trains_and_scores_but_changes_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, output = invoke(cli_env, "--dry-run")

    version = re.search(r"candidate ([0-9a-f]{12})", output)
    assert version is not None, output
    assert open_registry(tmp_path / "registry").versions() == []
    url = cli_env["MOVIE_RECS_STORE_URL"]
    assert on_store(url, lambda store: store.serving_model()) is None
    assert on_store(url, lambda store: cached_vectors(store, version.group(1))) == {}
    assert code == 0
    assert "gate passed" in output and "dry run: nothing published" in output


def test_no_promote_publishes_and_caches_but_leaves_the_pointer_and_a_rerun_republishes_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, output = invoke(cli_env, "--no-promote")

    (published,) = open_registry(tmp_path / "registry").versions()
    url = cli_env["MOVIE_RECS_STORE_URL"]
    assert on_store(url, lambda store: store.serving_model()) is None
    cached = on_store(url, lambda store: cached_vectors(store, published.version))
    assert len(cached) == published.manifest["data_cut"]["movies"]
    assert published.manifest["training"]["config"]["epochs"] == 3  # --config-json held
    assert code == 0, output
    assert f"candidate {published.version}" in output
    assert "not promoted (--no-promote); it passed the gate" in output

    # the same data, config and seed again: the same version, which stays as first published
    code, output = invoke(cli_env, "--no-promote")
    assert code == 0, output
    assert f"{published.version}: already in" in output
    assert open_registry(tmp_path / "registry").versions() == [published]


def test_a_serving_version_the_registry_lacks_stops_the_run_before_training(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    url = cli_env["MOVIE_RECS_STORE_URL"]
    on_store(url, lambda store: store.promote_model("0123456789ab", "published elsewhere"))

    code, output = invoke(cli_env)

    assert code == 2
    assert "names 0123456789ab as the serving model" in output
    assert "nothing to gate against" in output and "Epoch" not in output
    assert on_store(url, lambda store: store.serving_model()) == "0123456789ab"
    assert open_registry(tmp_path / "registry").versions() == []

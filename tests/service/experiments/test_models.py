"""The model versions an experiment names, held beside the served one: built from the registry,
kept current with the change log, let go when no experiment names them (real store, real
registry directory, two real tiny models)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embeddings.artifacts import read_manifest, resolve_model_dir
from embeddings.registry import open_registry
from service.experiments.models import VariantModels
from service.index.live import IndexParams
from service.index.refresher import Refresher
from service.metrics import Metrics
from service.model_source import ModelSource
from service.store import Movie, Store, Upsert
from service.towers import Towers

pytestmark = pytest.mark.anyio


def version_of(model_dir: Path) -> str:
    return str(read_manifest(resolve_model_dir(model_dir))["version"])


async def until(check: Callable[[], bool], seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds:g} s")


@pytest.fixture
async def served(
    store: Store, tiny_towers: Towers, other_tiny_model_dir: Path, tmp_path: Path
) -> Refresher:
    registry = tmp_path / "registry"
    open_registry(registry).publish(resolve_model_dir(other_tiny_model_dir))
    await store.apply_changes(
        [Upsert(Movie(str(i), f"Film {i}", ("Drama",), 1990 + i)) for i in range(30)]
    )
    refresher = Refresher(
        store,
        tiny_towers,
        IndexParams(),
        Metrics(),
        models=ModelSource(str(registry), tmp_path / "cache"),
    )
    await refresher.catch_up()
    return refresher


async def test_a_named_version_is_served_with_its_own_index_and_follows_the_log(
    served: Refresher, store: Store, other_tiny_model_dir: Path
) -> None:
    other = version_of(other_tiny_model_dir)
    models = VariantModels(served)
    try:
        await models.hold({other})
        assert models.serving(other) is None  # building: not served until caught up
        await until(lambda: models.serving(other) is not None)
        variant = models.serving(other)
        assert variant is not None and variant.towers.version == other
        main = served.serving
        assert main is not None and len(variant.live) == len(main.live) == 30
        # Its vectors come from its own movie tower, not the served model's.
        own_vector, other_vector = main.live.get("3"), variant.live.get("3")
        assert own_vector is not None and other_vector is not None
        assert not np.allclose(own_vector[0], other_vector[0])
        assert models.status() == {other: "ready"}

        await store.apply_changes([Upsert(Movie("new", "A New Film", ("Comedy",), 2020))])
        await until(
            lambda: (s := models.serving(other)) is not None and s.live.get("new") is not None
        )

        await models.hold(set())  # the experiment stopped
        assert models.serving(other) is None and models.status() == {}
    finally:
        await models.close()


async def test_the_served_version_needs_nothing_extra(
    served: Refresher, tiny_towers: Towers
) -> None:
    models = VariantModels(served)
    await models.hold({tiny_towers.version})
    assert models.status() == {}
    assert models.serving(tiny_towers.version) is served.serving
    assert models.present() == {tiny_towers.version}


async def test_a_version_the_registry_lacks_is_reported_and_never_served(served: Refresher) -> None:
    models = VariantModels(served)
    try:
        await models.hold({"no-such-version"})
        await until(lambda: models.status()["no-such-version"] != "building")
        assert "cannot fetch model no-such-version" in models.status()["no-such-version"]
        assert models.serving("no-such-version") is None
    finally:
        await models.close()

"""Apps on a copy of the seeded store and the tiny trained model."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.towers import Towers

MakeClient = Callable[..., TestClient]


@pytest.fixture
def app_settings(tmp_path: Path, seeded_sqlite: Path, tiny_model_dir: Path) -> Settings:
    db = tmp_path / "store.db"
    shutil.copy(seeded_sqlite, db)
    return Settings(
        store_url=f"sqlite:///{db}",
        artifacts_dir=tiny_model_dir,
        model_version="latest",
        _env_file=None,  # type: ignore[call-arg]
    )


MODEL_SETTINGS = {"artifacts_dir", "model_version", "tf_threads"}


@pytest.fixture
def make_client(app_settings: Settings, tiny_towers: Towers) -> Iterator[MakeClient]:
    """Build a started app (lifespan run) with setting overrides; closed after the test.

    The apps share the session's loaded tiny model (no SavedModel load per test) unless a test
    overrides where the model comes from.
    """
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(**{**app_settings.model_dump(), **overrides}, _env_file=None)  # type: ignore[call-arg]
        towers = None if MODEL_SETTINGS & overrides.keys() else tiny_towers
        client = TestClient(create_app(settings, towers))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()

"""Shared fixtures: a real redis-server on a free port (pytest-redis), a store per backend, the
tiny trained model, the seeded MovieLens store, and apps built on them."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pytest_redis import factories

from bench.harness.redis import RedisServer, redis_server_path
from embeddings.data import BUNDLED_DATA
from service.api.app import create_app
from service.config import Settings
from service.store import Store, open_store
from service.towers import Towers
from tests.support.service import MakeClient

ROOT = Path(__file__).resolve().parents[1]

# A throwaway server per test session on a free port; never the machine's own 6379.
redis_proc = factories.redis_proc(executable=redis_server_path(), port=None)  # type: ignore[arg-type]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_url(redis_proc) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A clean database on the session's redis-server."""
    import redis

    url = f"redis://{redis_proc.host}:{redis_proc.port}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    yield url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that freeze, kill or fill it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both backends: one contract, two implementations."""
    fixture = "sqlite_url" if request.param == "sqlite" else "redis_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url, activity_max_events=5, changelog_max_len=1000)
    try:
        yield opened
    finally:
        await opened.close()


def _fingerprint(*patterns: str) -> str:
    """Hash of the files that decide a cached fixture: change one and it is built anew."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in patterns for p in ROOT.glob(pattern)):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _cached(request: pytest.FixtureRequest, name: str, build: Callable[[Path], Path]) -> Path:
    """`build(directory)` once per fingerprint, kept in pytest's cache (.pytest_cache/), so the
    fast loop does not retrain or re-import; without the cache plugin, built per session."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return build(Path(tempfile.mkdtemp(prefix=f"{name}-")))
    done = cache.mkdir(name)
    if (done / "ready").is_file():
        return Path(done / (done / "ready").read_text("utf-8"))
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=done.parent))
    result = build(staging)
    shutil.rmtree(done)
    staging.rename(done)
    relative = result.relative_to(staging).as_posix()
    (done / "ready").write_text(relative, "utf-8")
    return Path(done / relative)


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """A real two-tower model, trained in seconds on 40 users of the bundled data, under a
    strict umask (077) so the tests see what a user or CI with one would publish (and cached
    until the training code or the data change)."""
    from embeddings.train import train_tiny

    def build(artifacts: Path) -> Path:
        previous = os.umask(0o077)
        try:
            return train_tiny(artifacts)
        finally:
            os.umask(previous)

    key = _fingerprint("embeddings/*.py", "data/ml-latest-small/*.csv")
    return _cached(request, f"tiny-model-{key}", build)


@pytest.fixture(scope="session")
def other_tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """A second tiny model (another seed, so another version): what a promotion swaps to."""
    from embeddings.train import train_tiny

    key = _fingerprint("embeddings/*.py", "data/ml-latest-small/*.csv")
    return _cached(request, f"tiny-model-seed1-{key}", lambda out: train_tiny(out, seed=1))


@pytest.fixture(scope="session")
def tiny_sequential_model_dir(request: pytest.FixtureRequest) -> Path:
    """A tiny model whose user tower is the sequential one (TrainConfig.user_tower)."""
    from dataclasses import replace

    from embeddings.train import TINY_CONFIG, train_tiny

    config = replace(TINY_CONFIG, user_tower="sequential")
    key = _fingerprint("embeddings/*.py", "data/ml-latest-small/*.csv")
    return _cached(request, f"tiny-sequential-{key}", lambda out: train_tiny(out, config=config))


@pytest.fixture(scope="session")
def tiny_towers(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from service.towers import load_towers

    return load_towers(tiny_model_dir, "latest")


@pytest.fixture(scope="session")
def seeded_sqlite(request: pytest.FixtureRequest, tiny_towers) -> Path:  # type: ignore[no-untyped-def]
    """The bundled MovieLens imported into a SQLite file, with the tiny model's embeddings cached
    (and cached itself until the model, the service or the data change).

    Tests copy it, so each one starts from the same catalog without re-importing.
    """
    import asyncio

    from service.index.vectors import vectors_for
    from service.ingest.importer import import_movielens
    from service.ingest.movielens import read_movielens

    towers = tiny_towers

    def build(directory: Path) -> Path:
        path = directory / "store.db"

        async def seed() -> None:
            store = await open_store(f"sqlite:///{path}")
            await import_movielens(store, read_movielens(BUNDLED_DATA))
            async for batch in store.iter_movies(5000):
                await vectors_for(store, towers, batch)
            await store.close()

        asyncio.run(seed())
        return path

    key = _fingerprint("service/**/*.py", "embeddings/*.py", "data/ml-latest-small/*.csv")
    return _cached(request, f"seeded-{towers.version}-{key}", build)


@pytest.fixture
def app_settings(tmp_path: Path, seeded_sqlite: Path, tiny_model_dir: Path) -> Settings:
    db = tmp_path / "store.db"
    shutil.copy(seeded_sqlite, db)
    return Settings(
        store_url=f"sqlite:///{db}",
        artifacts_dir=tiny_model_dir,
        model_version="latest",
        auth_disabled=True,
        _env_file=None,  # type: ignore[call-arg]
    )


MODEL_SETTINGS = {"artifacts_dir", "model_version", "tf_threads"}


@pytest.fixture
def make_client(app_settings: Settings, tiny_towers: Towers) -> Iterator[MakeClient]:
    """Build a started app (lifespan run) with setting overrides; closed after the test.

    The apps share the session's loaded tiny model (no model load per test) unless a test
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

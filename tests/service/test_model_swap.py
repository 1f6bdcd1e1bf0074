"""A promoted model reaches every replica without a failed request, and a rollback brings the
previous one back: two real `movie-recs serve` on a redis-server of the test's own, a load
generator on both, the real `movie-recs models` commands, a webhook during the swap."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.harness.redis import RedisServer
from bench.harness.servers import Server, server_env
from embeddings.artifacts import read_manifest, resolve_model_dir
from embeddings.data import BUNDLED_DATA
from embeddings.registry import open_registry
from service.ingest.webhook_signer import post_webhook
from tests.support.service import SECRET, seed

pytestmark = pytest.mark.slow
SWITCH_SECONDS = 60  # tiny models, 9,742 movies: seconds; generous for a loaded CI machine


@dataclass
class Fleet:
    redis: RedisServer
    replicas: tuple[Server, Server]
    env: dict[str, str]
    own: str  # the image's model (MOVIE_RECS_ARTIFACTS_DIR)
    other: str  # a second version, only in the registry
    registry: Path


def version_of(model_dir: Path) -> str:
    return str(read_manifest(resolve_model_dir(model_dir))["version"])


@pytest.fixture(scope="module")
def fleet(
    tiny_model_dir: Path, other_tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("swap")
    registry = work / "registry"
    for model in (tiny_model_dir, other_tiny_model_dir):
        open_registry(registry).publish(resolve_model_dir(model))
    redis = RedisServer(work / "redis")
    redis.start()
    seed(redis.url, BUNDLED_DATA)
    env = server_env(
        redis.url,
        tiny_model_dir,
        MOVIE_RECS_WEBHOOK_SECRETS=SECRET,
        MOVIE_RECS_REGISTRY_URL=str(registry),
        MOVIE_RECS_MODEL_CACHE_DIR=str(work / "cache"),
        MOVIE_RECS_MODEL_POLL_SECONDS="0.2",
    )
    replicas = (Server(env, work / "replica-0.log"), Server(env, work / "replica-1.log"))
    try:
        for replica in replicas:
            replica.wait_ready(timeout=180)
        yield Fleet(
            redis,
            replicas,
            env,
            version_of(tiny_model_dir),
            version_of(other_tiny_model_dir),
            registry,
        )
    finally:
        for replica in replicas:
            replica.kill()
        redis.kill()


def models(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `movie-recs models ...` with the fleet's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOVIE_RECS_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "movie-recs"), "models", *args],
        env={**clean, **fleet.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def serving(replica: Server) -> tuple[str, str | None]:
    ready = httpx.get(f"{replica.url}/readyz", timeout=10).json()
    return ready["model_version"], ready.get("model_swap_error")


def wait_all_serve(fleet: Fleet, version: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < SWITCH_SECONDS:
        if all(serving(r)[0] == version for r in fleet.replicas):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(
        f"not every replica serves {version}: {[serving(r) for r in fleet.replicas]}"
    )


class Load:
    """Requests to both replicas, as fast as one thread each sends them, until stopped."""

    def __init__(self, fleet: Fleet) -> None:
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(r.url,)) for r in fleet.replicas]

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not self._stop.is_set():
                for response in (
                    client.get("/v1/users/1/recommendations", params={"k": 5}),
                    client.post("/v1/recommendations", json={"history": [{"movie_id": "1"}]}),
                ):
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.versions[response.json()["model_version"]] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def test_promote_and_rollback_under_load_fail_no_request(fleet: Fleet) -> None:
    assert [serving(r)[0] for r in fleet.replicas] == [fleet.own, fleet.own]
    with Load(fleet) as load:
        time.sleep(1.0)
        promoted = models(fleet, "promote", fleet.other, "--note", "test")
        assert promoted.returncode == 0, promoted.stderr
        # A movie arrives while the replicas build the new model's index.
        body = (
            b'{"type": "movie.upserted", '
            b'"data": {"id": "990001", "title": "Mid Swap", "genres": ["Drama"]}}'
        )
        assert post_webhook(fleet.replicas[0].url, SECRET, body).status_code == 202
        switched = wait_all_serve(fleet, fleet.other)
        time.sleep(1.0)
        rolled = models(fleet, "rollback")
        assert rolled.returncode == 0, rolled.stderr
        back = wait_all_serve(fleet, fleet.own)
        time.sleep(1.0)
    print(
        f"switched in {switched:.1f}s, rolled back in {back:.1f}s; {load.statuses}, {load.versions}"
    )
    assert set(load.statuses) == {200}, load.statuses  # zero non-2xx through both moves
    assert set(load.versions) == {fleet.own, fleet.other} and load.versions[fleet.other] > 0
    for replica in fleet.replicas:
        movie = httpx.get(f"{replica.url}/v1/movies/990001", timeout=10).json()
        assert movie["indexed"] is True  # the webhook's movie survived both swaps
        similar = httpx.get(f"{replica.url}/v1/movies/990001/similar", timeout=10)
        assert similar.status_code == 200 and similar.json()["model_version"] == fleet.own
    listing = models(fleet, "list")
    assert fleet.own in listing.stdout and "serving" in listing.stdout


def test_a_version_that_fails_its_check_is_refused_and_the_old_one_serves(
    fleet: Fleet, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(fleet.registry / fleet.other, broken)
    (broken / "complete.json").unlink(missing_ok=True)
    manifest = read_manifest(broken)
    manifest["version"] = "broken-" + fleet.other
    (broken / "manifest.json").write_text(json.dumps(manifest))
    weights = dict(np.load(broken / "user_tower.npz"))
    first = sorted(weights)[0]
    weights[first] = weights[first] + 1.0  # the NumPy tower no longer agrees with the SavedModel
    np.savez(broken / "user_tower.npz", **weights)
    open_registry(fleet.registry).publish(broken)

    refused = models(fleet, "promote", manifest["version"])
    assert refused.returncode == 2 and "cannot be served" in refused.stderr
    before = [serving(r)[0] for r in fleet.replicas]

    # Past the CLI (a pointer moved by hand): every replica keeps its model and says why.
    async def point() -> None:
        from service.store import open_store

        store = await open_store(fleet.redis.url)
        await store.promote_model(manifest["version"], "by hand")
        await store.close()

    asyncio.run(point())
    deadline = time.monotonic() + SWITCH_SECONDS
    while time.monotonic() < deadline and not all(serving(r)[1] for r in fleet.replicas):
        time.sleep(0.2)
    for replica, model in zip(fleet.replicas, before, strict=True):
        version, error = serving(replica)
        assert version == model and error and manifest["version"] in error
        assert httpx.get(f"{replica.url}/readyz", timeout=10).status_code == 200
        metrics = httpx.get(f"{replica.url}/metrics", timeout=10).text
        assert 'movie_recs_model_swaps_total{outcome="failed"}' in metrics
    assert models(fleet, "rollback").returncode == 0

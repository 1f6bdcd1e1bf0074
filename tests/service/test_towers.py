"""The towers as the service runs them, against what training exported."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from service.store import Movie, open_store
from service.towers import ModelLoadError, Towers
from tests.support.service import MakeClient


def stored_movies(seeded_sqlite: Path) -> list[Movie]:
    async def read() -> list[Movie]:
        store = await open_store(f"sqlite:///{seeded_sqlite}")
        try:
            return [m async for batch in store.iter_movies(5000) for m in batch]
        finally:
            await store.close()

    return asyncio.run(read())


def test_every_bundled_movie_gets_the_vector_training_exported(
    seeded_sqlite: Path, tiny_model_dir: Path, tiny_towers: Towers
) -> None:
    """No train/serve skew: the imported record, run through the served movie tower, gives the
    exact row of movie_vectors.npy, for every movie of the bundled catalog."""
    exported = np.load(tiny_model_dir / "movie_vectors.npy")
    row = {m: i for i, m in enumerate(json.loads((tiny_model_dir / "movie_ids.json").read_text()))}
    movies = stored_movies(seeded_sqlite)
    assert len(movies) == len(row) == 9742

    served = tiny_towers.embed_movies(movies)

    expected = exported[[row[m.id] for m in movies]]
    gaps = np.abs(served - expected).max(axis=1)
    skewed = [m.id for m, gap in zip(movies, gaps, strict=True) if gap > 1e-5]
    assert skewed == [], f"{len(skewed)} movies differ, up to {gaps.max():.2e}"


def tampered_model(tiny_model_dir: Path, into: Path) -> Path:
    """A copy of the model whose NumPy user-tower weights no longer match its SavedModel."""
    import shutil

    copy = shutil.copytree(tiny_model_dir, into / tiny_model_dir.name)  # a version directory
    with np.load(copy / "user_tower.npz") as archive:
        params = dict(archive)
    params["project_bias"] = params["project_bias"] + 0.5
    np.savez(copy / "user_tower.npz", **params)
    return copy


def test_a_model_that_fails_its_check_after_ready_turns_the_replica_unready(
    make_client: MakeClient, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """TensorFlow loads after ready; its check still guards: readiness drops for good, it says
    why, and the movie tower never embeds a movie."""
    client = make_client(artifacts_dir=tampered_model(tiny_model_dir, tmp_path))
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "NumPy user tower differs from the SavedModel" in ready.json()["reason"]
    assert "movie_recs_model_check_failed 1.0" in client.get("/metrics").text
    towers = client.app.state.app_state.index.towers  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError):
        towers.embed_movies([Movie("new", "A New Film")])


def test_a_sound_model_passes_its_check_after_ready(
    make_client: MakeClient, tiny_model_dir: Path
) -> None:
    client = make_client(artifacts_dir=tiny_model_dir)  # loaded by the app, not the shared one
    deadline = time.monotonic() + 120
    while "movie_recs_model_checked 1.0" not in client.get("/metrics").text:
        assert time.monotonic() < deadline, "TensorFlow never loaded"
        time.sleep(0.1)
    assert client.get("/readyz").status_code == 200

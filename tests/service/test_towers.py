"""The towers as the service runs them, against what training exported."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.store import Movie, open_store
from service.towers import ModelLoadError, Towers, load_towers
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


def copy_model(tiny_model_dir: Path, into: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, into / tiny_model_dir.name))  # a version dir


def shift_weight(version: Path, archive_name: str, weight: str, by: float) -> None:
    with np.load(version / archive_name) as archive:
        params = dict(archive)
    params[weight] = params[weight] + by
    np.savez(version / archive_name, **params)


@pytest.mark.parametrize(
    ("archive", "weight", "tower"),
    [
        ("movie_tower.npz", "project_bias", "movie tower"),
        ("user_tower.npz", "project_bias", "user tower"),
    ],
)
def test_a_model_whose_numpy_towers_miss_the_probe_does_not_start(
    make_client: MakeClient,
    tiny_model_dir: Path,
    tmp_path: Path,
    archive: str,
    weight: str,
    tower: str,
) -> None:
    """Weights that no longer give the SavedModels' outputs recorded at export: no replica
    serves them (startup fails; `models promote` and a hot swap get the same error)."""
    version = copy_model(tiny_model_dir, tmp_path)
    shift_weight(version, archive, weight, 1e-3)

    with pytest.raises(ModelLoadError, match=f"NumPy {tower} differs from the SavedModel"):
        load_towers(version.parent, version.name)
    with pytest.raises(ModelLoadError, match=f"NumPy {tower} differs"):
        make_client(artifacts_dir=version)


def test_a_model_exported_before_numpy_movie_towers_is_refused_with_the_fix(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    version = copy_model(tiny_model_dir, tmp_path)
    (version / "movie_tower.npz").unlink()
    (version / "probe.json").unlink()

    with pytest.raises(ModelLoadError) as refused:
        load_towers(version.parent, version.name)
    assert "exported before the service dropped TensorFlow" in str(refused.value)
    assert f"movie-recs add-numpy-towers --model {version}" in str(refused.value)


def test_a_sound_model_is_checked_when_ready(make_client: MakeClient, tiny_model_dir: Path) -> None:
    client = make_client(artifacts_dir=tiny_model_dir)  # loaded by the app, not the shared one
    assert client.get("/readyz").status_code == 200
    assert "movie_recs_model_checked 1.0" in client.get("/metrics").text


@pytest.mark.slow
def test_the_sequential_tower_is_served_as_its_saved_model_computes_it(
    tiny_sequential_model_dir: Path,
) -> None:
    """Any history length a request brings (none, one, a few, more than L), unpadded at the
    service, gives the SavedModel's vector of the padded history."""
    from embeddings.artifacts import load_towers as load_saved_models

    towers = load_towers(tiny_sequential_model_dir, "latest")
    assert towers.manifest["config"]["user_tower"] == "sequential"
    saved = load_saved_models(tiny_sequential_model_dir)
    catalog = np.load(tiny_sequential_model_dir / "movie_vectors.npy")
    length = towers.history_length
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, length, length + 10):
        history = catalog[rng.integers(0, len(catalog), n)]
        weights = rng.integers(5, 11, n).astype(np.float32) / 10
        padded = np.zeros((1, length, towers.dim), np.float32)
        padded_weights = np.zeros((1, length), np.float32)
        padded[0, : min(n, length)] = history[:length]
        padded_weights[0, : min(n, length)] = weights[:length]
        expected = saved.embed_users(padded, padded_weights)[0]
        assert np.abs(towers.embed_user(history, weights) - expected).max() <= 1e-5, n


@pytest.mark.slow
def test_a_sequential_model_whose_numpy_tower_misses_the_probe_is_refused(
    tiny_sequential_model_dir: Path, tmp_path: Path
) -> None:
    version = copy_model(tiny_sequential_model_dir, tmp_path)
    shift_weight(version, "user_tower.npz", "block0_output_bias", 1e-2)
    with pytest.raises(ModelLoadError, match="NumPy user tower differs from the SavedModel"):
        load_towers(version.parent, version.name)

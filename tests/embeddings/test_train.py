"""End to end on a tiny real model: train, export, load without training code, embed."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.numpy_user_tower import forward, load_params

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter that refuses to import the project's code: plain TensorFlow only.
LOAD_WITHOUT_TRAINING_CODE = r"""
import json, sys
import numpy as np

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("embeddings", "service"):
            raise ImportError(f"project code imported: {name}")
        return None

sys.meta_path.insert(0, Refuse())
import tensorflow as tf

version = sys.argv[1]
movie_tower = tf.saved_model.load(f"{version}/movie_tower").signatures["serving_default"]
user_tower = tf.saved_model.load(f"{version}/user_tower").signatures["serving_default"]
manifest = json.load(open(f"{version}/manifest.json"))
new_movie = movie_tower(
    movie_id=tf.constant(["999999", "1", "1"]),
    title=tf.constant(["Toy Story 7", "Toy Story", "Toy Story"]),
    genres=tf.constant(["Adventure|Animation|Children|Comedy", "Adventure|Animation", ""]),
    tags=tf.constant(["pixar", "pixar|fun", ""]),
    year=tf.constant([2031, 1995, 0], tf.int32),
)["embedding"].numpy()
length, dim = manifest["history_length"], manifest["dim"]
catalog = np.load(f"{version}/movie_vectors.npy")
history = np.zeros((2, length, dim), np.float32)
weights = np.zeros((2, length), np.float32)
history[0, 0], history[0, 1] = new_movie[0], catalog[0]  # newest first: the new movie
weights[0, :2] = 1.0
user = user_tower(history=tf.constant(history), weights=tf.constant(weights))["embedding"].numpy()
print(json.dumps({"movies": new_movie.tolist(), "users": user.tolist()}))
"""


def test_artifact_layout_and_manifest(tiny_artifacts: Path) -> None:
    manifest = json.loads((tiny_artifacts / "manifest.json").read_text())
    assert (tiny_artifacts.parent / "latest").read_text().strip() == tiny_artifacts.name
    assert manifest["version"] == tiny_artifacts.name
    assert manifest["dim"] == 64
    assert manifest["history_length"] == 50
    assert set(manifest["metrics"]) == {
        "model",
        "popularity",
        "cooccurrence",
        "cold_movies",
        "liked_targets",
    }
    assert {"hr@10", "ndcg@10", "hr@10_ci95", "ndcg@10_ci95"} <= set(manifest["metrics"]["model"])
    for name in ("training_seconds", "seed", "config", "data_hash", "num_movies", "created"):
        assert name in manifest
    # The choice left to the data is recorded as made: a small catalog trains without the cache.
    assert manifest["config"]["history_refresh_steps"] == 0
    ids = json.loads((tiny_artifacts / "movie_ids.json").read_text())
    vectors = np.load(tiny_artifacts / "movie_vectors.npy")
    assert vectors.shape == (manifest["num_movies"], 64) == (len(ids), 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert all(isinstance(i, str) for i in ids)
    for name in ("movie_ids", "genres", "title_tokens", "tags"):
        assert (tiny_artifacts / "vocab" / f"{name}.txt").is_file()


def test_a_published_version_is_readable_by_every_user(tiny_artifacts: Path) -> None:
    """Trained under umask 077 (tests/conftest.py) and still 0755/0644: the image's non-root
    user (uid 10001) reads a model that root wrote. The staging directory is made 0700."""
    modes = {
        path.relative_to(tiny_artifacts.parent): stat.S_IMODE(path.stat().st_mode)
        for path in [tiny_artifacts, *tiny_artifacts.rglob("*"), tiny_artifacts.parent / "latest"]
    }
    assert len(modes) > 10
    wrong = {
        str(path): oct(mode)
        for path, mode in modes.items()
        if mode != (0o755 if (tiny_artifacts.parent / path).is_dir() else 0o644)
    }
    assert not wrong


def test_load_without_training_code_and_embed_a_new_movie_and_its_viewer(
    tiny_artifacts: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TRAINING_CODE, str(tiny_artifacts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    movies, users = np.array(out["movies"]), np.array(out["users"])
    assert movies.shape == (3, 64) and users.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(movies, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(movies[1], movies[2])  # content changes the vector
    # The history holding the new movie gives a user close to it: the towers share one space.
    catalog = np.load(tiny_artifacts / "movie_vectors.npy")
    assert users[0] @ movies[0] > np.median(catalog @ users[0])


def test_movie_vectors_are_the_movie_tower_on_the_catalog(tiny_artifacts: Path) -> None:
    from embeddings.artifacts import load_towers
    from embeddings.data import BUNDLED_DATA
    from embeddings.movie_inputs import embed_movies
    from embeddings.train import tiny_dataset

    towers = load_towers(tiny_artifacts.parent)  # through `latest`
    dataset = tiny_dataset(BUNDLED_DATA)
    ids = json.loads((tiny_artifacts / "movie_ids.json").read_text())
    assert ids == [m.id for m in dataset.movies]
    vectors = embed_movies(towers.movie_tower, dataset.movies[:50], 64)
    np.testing.assert_allclose(
        vectors, np.load(tiny_artifacts / "movie_vectors.npy")[:50], atol=1e-6
    )


def test_numpy_user_tower_matches_the_saved_model(tiny_artifacts: Path) -> None:
    from embeddings.artifacts import load_towers

    towers = load_towers(tiny_artifacts)
    rng = np.random.default_rng(1)
    history = rng.normal(size=(6, 50, 64)).astype(np.float32)
    history /= np.linalg.norm(history, axis=-1, keepdims=True)
    weights = np.where(rng.random((6, 50)) < 0.7, rng.uniform(0.1, 1.0, (6, 50)), 0).astype(
        np.float32
    )
    weights[0] = 0.0  # no history at all: still a unit vector, never NaN
    weights[1, 1:] = 0.0  # a single movie
    history[weights == 0] = 0.0
    exact = towers.embed_users(history, weights)
    fast = forward(load_params(tiny_artifacts / "user_tower.npz"), history, weights)
    np.testing.assert_allclose(fast, exact, atol=1e-5)
    assert np.isfinite(exact).all()


def test_training_is_deterministic_for_a_seed(tiny_artifacts: Path, tmp_path: Path) -> None:
    from embeddings.train import train_tiny

    again = train_tiny(tmp_path)
    assert again.name == tiny_artifacts.name
    np.testing.assert_array_equal(
        np.load(again / "movie_vectors.npy"), np.load(tiny_artifacts / "movie_vectors.npy")
    )


def test_training_writes_one_plain_line_per_epoch_to_a_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Keras' progress bar is for terminals; a log file or CI log gets one line per epoch."""
    from embeddings.data import BUNDLED_DATA
    from embeddings.train import TINY_CONFIG, tiny_dataset, train

    train(tiny_dataset(BUNDLED_DATA), tmp_path, config=TINY_CONFIG, log=lambda _: None)
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("Epoch ")] == ["Epoch 1/2", "Epoch 2/2"]
    assert "\x1b" not in out and "\x08" not in out and "\r" not in out
    assert len(lines) == 4, out  # "Epoch i/2" and one summary line each

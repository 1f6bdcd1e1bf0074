"""Write one model version: both towers as SavedModels with fixed signatures, and their data.

Layout of `artifacts/<version>/` (the contract the service loads; see embeddings/README.md):
movie_tower/, user_tower/ (SavedModels, `serving_default`), user_tower.npz, vocab/*.txt,
movie_vectors.npy + movie_ids.json, manifest.json. `artifacts/latest` names the newest version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from embeddings.features import MovieEncoder, Vocabularies
from embeddings.model import MovieTower, UserTower

DIR_MODE = 0o755
FILE_MODE = 0o644


class MovieTowerModule(tf.Module):
    """Raw movie fields -> L2-normalized vector; lookups and tokenization happen inside."""

    def __init__(self, encoder: MovieEncoder, tower: MovieTower) -> None:
        super().__init__(name="movie_tower")
        self.encoder = encoder
        self.tower = tower

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="movie_id"),
            tf.TensorSpec([None], tf.string, name="title"),
            tf.TensorSpec([None], tf.string, name="genres"),
            tf.TensorSpec([None], tf.string, name="tags"),
            tf.TensorSpec([None], tf.int32, name="year"),
        ]
    )
    def serve(
        self,
        movie_id: tf.Tensor,
        title: tf.Tensor,
        genres: tf.Tensor,
        tags: tf.Tensor,
        year: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        features = self.encoder(movie_id=movie_id, title=title, genres=genres, tags=tags, year=year)
        return {"embedding": self.tower(features, training=False)}


def _user_module(tower: UserTower, length: int, dim: int) -> tf.Module:
    class UserTowerModule(tf.Module):
        """Movie vectors of the history (newest first, zero padded) and weights -> vector."""

        def __init__(self) -> None:
            super().__init__(name="user_tower")
            self.tower = tower

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, length, dim], tf.float32, name="history"),
                tf.TensorSpec([None, length], tf.float32, name="weights"),
            ]
        )
        def serve(self, history: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"embedding": self.tower(history, weights)}

    return UserTowerModule()


def user_tower_params(tower: UserTower) -> dict[str, np.ndarray]:
    """The weights `embeddings.numpy_user_tower.forward` needs, by name."""
    return {
        "position": np.asarray(tower.position.numpy()),
        "query": np.asarray(tower.query.numpy()),
        "hidden_kernel": np.asarray(tower.hidden.kernel.numpy()),
        "hidden_bias": np.asarray(tower.hidden.bias.numpy()),
        "project_kernel": np.asarray(tower.project.kernel.numpy()),
        "project_bias": np.asarray(tower.project.bias.numpy()),
    }


def save_towers(
    directory: Path,
    *,
    encoder: MovieEncoder,
    movie_tower: MovieTower,
    user_tower: UserTower,
    vocabularies: Vocabularies,
    history_length: int,
    dim: int,
) -> None:
    """SavedModels, the NumPy copy of the user tower and the vocabularies."""
    movie_module = MovieTowerModule(encoder, movie_tower)
    tf.saved_model.save(
        movie_module,
        str(directory / "movie_tower"),
        signatures={"serving_default": movie_module.serve},
    )
    user_module = _user_module(user_tower, history_length, dim)
    tf.saved_model.save(
        user_module,
        str(directory / "user_tower"),
        signatures={"serving_default": user_module.serve},
    )
    params: dict[str, Any] = user_tower_params(user_tower)  # Any: savez's **kwds are untyped
    np.savez(directory / "user_tower.npz", **params)
    vocabularies.save(directory / "vocab")


def save_catalog(directory: Path, movie_ids: Sequence[str], vectors: np.ndarray) -> None:
    np.save(directory / "movie_vectors.npy", vectors.astype(np.float32))
    (directory / "movie_ids.json").write_text(json.dumps(list(movie_ids)), "utf-8")


def save_popular(
    directory: Path, movie_ids: Sequence[str], sequences: Sequence[np.ndarray], top: int = 1000
) -> None:
    """The most-watched movies of the training data with their share of the maximum: what the
    service recommends to users without history (`popular.json`, [[id, score], ...])."""
    counts = np.zeros(len(movie_ids), np.int64)
    for movies in sequences:
        np.add.at(counts, movies, 1)
    order = np.argsort(-counts, kind="stable")[:top]
    peak = max(int(counts[order[0]]), 1) if len(order) else 1
    ranked = [[movie_ids[i], round(int(counts[i]) / peak, 6)] for i in order if counts[i] > 0]
    (directory / "popular.json").write_text(json.dumps(ranked), "utf-8")


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")


def staging_dir(artifacts: Path) -> Path:
    """A fresh directory next to the versions, so publishing is a rename on the same disk."""
    artifacts.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=artifacts))


def make_world_readable(directory: Path) -> None:
    """Directories 0755, files 0644, whatever the umask: the service (another user, e.g. the
    image's uid 10001) must read a model that root or a CI user wrote, and `tempfile.mkdtemp`
    creates the staging directory 0700."""
    directory.chmod(DIR_MODE)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            (Path(root) / name).chmod(DIR_MODE)
        for name in files:
            (Path(root) / name).chmod(FILE_MODE)


def publish(staging: Path, artifacts: Path, version: str) -> Path:
    """Move a finished version into place, readable by every user, and point `latest` at it
    (both atomic renames).

    Retraining the same data, config and seed gives the same version: the old copy is replaced.
    """
    make_world_readable(staging)
    target = artifacts / version
    if target.exists():
        old = artifacts / f".old-{version}-{os.getpid()}"
        target.rename(old)
        shutil.rmtree(old)
    staging.rename(target)
    pointer = artifacts / f".latest-{os.getpid()}"
    pointer.write_text(version + "\n", "utf-8")
    pointer.chmod(FILE_MODE)
    pointer.replace(artifacts / "latest")
    return target

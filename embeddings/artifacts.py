"""Find and load a model version with TensorFlow only: no training code, no Keras classes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ArtifactError(Exception):
    """No usable model version at the given path."""


class ExportError(Exception):
    """The NumPy towers differ from the SavedModels: the version must not be published."""


def resolve_model_dir(path: Path) -> Path:
    """A version directory as is, or an artifacts directory through its `latest` pointer."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    pointer = path / "latest"
    if pointer.is_file():
        version = path / pointer.read_text("utf-8").strip()
        if (version / "manifest.json").is_file():
            return version
        raise ArtifactError(f"{pointer} names {version.name}, which has no manifest.json")
    raise ArtifactError(
        f"{path}: neither a model version (manifest.json) nor has a `latest` pointer"
    )


def read_manifest(version_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((version_dir / "manifest.json").read_text("utf-8"))
    return manifest


@dataclass
class LoadedTowers:
    """The `serving_default` signatures of both towers plus the manifest."""

    directory: Path
    manifest: dict[str, Any]
    movie_tower: Any  # ConcreteFunction: movie_id, title, genres, tags, year -> {"embedding"}
    user_tower: Any  # ConcreteFunction: history, weights -> {"embedding"}
    _keep: tuple[Any, ...] = ()  # the loaded objects own the variables the signatures use

    def embed_users(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self.user_tower(
            history=tf.constant(history, tf.float32), weights=tf.constant(weights, tf.float32)
        )
        return np.asarray(out["embedding"].numpy(), np.float32)


def load_towers(path: Path) -> LoadedTowers:
    """Load the version at `path` (a version directory, or an artifacts directory)."""
    directory = resolve_model_dir(path)
    return open_towers(directory, read_manifest(directory))


def open_towers(directory: Path, manifest: dict[str, Any]) -> LoadedTowers:
    import tensorflow as tf

    movie = tf.saved_model.load(str(directory / "movie_tower"))
    user = tf.saved_model.load(str(directory / "user_tower"))
    return LoadedTowers(
        directory=directory,
        manifest=manifest,
        movie_tower=movie.signatures["serving_default"],
        user_tower=user.signatures["serving_default"],
        _keep=(movie, user),
    )

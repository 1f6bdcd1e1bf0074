"""The trained towers of one model version, as the service runs them.

The user tower runs on every request, so it runs as NumPy on the exported weights (≈16 µs vs
≈290 µs for the SavedModel signature, measured here); startup checks that the two agree on
a probe batch and refuses to start if they do not. The movie tower runs off the request path
(refresher), as the SavedModel signature, in batches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import movie_inputs, numpy_user_tower
from service.store import Movie

log = logging.getLogger(__name__)
AGREEMENT_TOLERANCE = 1e-4


class ModelLoadError(Exception):
    """The model version cannot be served; startup must fail."""


def configure_tensorflow(threads: int) -> None:
    """Set TF's thread pools before its runtime starts; later calls would be ignored."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process (tests build several apps)
        pass


@dataclass(eq=False)
class Towers:
    version: str
    dim: int
    history_length: int
    manifest: dict[str, Any]
    user_params: dict[str, np.ndarray]
    _loaded: Any  # embeddings.artifacts.LoadedTowers (holds the TF objects)
    popular: list[tuple[str, float]] = field(default_factory=list)  # for users without history

    def embed_user(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Movie vectors newest first [n, dim] and their weights [n] -> one unit vector."""
        length = self.history_length
        padded = np.zeros((1, length, self.dim), np.float32)
        padded_weights = np.zeros((1, length), np.float32)
        n = min(len(history), length)
        padded[0, :n] = history[:n]
        padded_weights[0, :n] = weights[:n]
        vector: np.ndarray = numpy_user_tower.forward(self.user_params, padded, padded_weights)[0]
        return vector

    def embed_user_tf(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The SavedModel signature path, for the startup check and the benchmark."""
        return np.asarray(self._loaded.embed_users(history, weights), np.float32)

    def embed_movies(self, movies: Sequence[Movie]) -> np.ndarray:
        """The movie tower over stored records, through the adapter training exported with."""
        return movie_inputs.embed_movies(self._loaded.movie_tower, movies, self.dim)


def load_popular(model_dir: Path) -> list[tuple[str, float]]:
    """Most-popular movies of the training data, for users without history."""
    path = model_dir / "popular.json"
    if not path.is_file():
        return []
    return [(str(mid), float(score)) for mid, score in json.loads(path.read_text("utf-8"))]


def load_towers(artifacts_dir: Path, model_version: str, tf_threads: int = 1) -> Towers:
    from embeddings.artifacts import ArtifactError
    from embeddings.artifacts import load_towers as load_saved

    path = Path(artifacts_dir) / model_version if model_version != "latest" else artifacts_dir
    configure_tensorflow(tf_threads)
    try:
        loaded = load_saved(Path(path))
        params = numpy_user_tower.load_params(loaded.directory / "user_tower.npz")
    except (ArtifactError, OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the model from {path}: {exc}") from None
    manifest = loaded.manifest
    towers = Towers(
        version=str(manifest["version"]),
        dim=int(manifest["dim"]),
        history_length=int(manifest["history_length"]),
        manifest=manifest,
        user_params=params,
        _loaded=loaded,
        popular=load_popular(loaded.directory),
    )
    _check_agreement(towers)
    log.info("loaded model %s from %s", towers.version, loaded.directory)
    return towers


def _check_agreement(towers: Towers) -> None:
    rng = np.random.default_rng(0)
    history = rng.normal(size=(4, towers.history_length, towers.dim)).astype(np.float32)
    weights = (rng.random((4, towers.history_length)) > 0.3).astype(np.float32)
    weights[:, 0] = 1.0
    fast = numpy_user_tower.forward(towers.user_params, history, weights)
    exact = towers.embed_user_tf(history, weights)
    gap = float(np.abs(fast - exact).max())
    if gap > AGREEMENT_TOLERANCE:
        raise ModelLoadError(f"NumPy user tower differs from the SavedModel by {gap:.2e}")

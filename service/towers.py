"""The trained towers of one model version, as the service runs them.

The user tower runs on every request, so it runs as NumPy on the exported weights (over ten
times faster than the SavedModel signature: docs/benchmarks.md); startup checks that the two
agree on a probe batch and refuses to serve if they do not. The movie tower runs off the
request path (refresher), as the SavedModel signature, in batches.

TensorFlow (~6 s to import) is needed only for the movie tower and that check, so a serving
replica loads it in a background thread once its index is ready (`defer_tensorflow`): the
check then runs before the movie tower embeds anything (every caller of the SavedModels waits
for the load and the check), and a failed check turns the replica unready for good, with an
error logged and `movie_recs_model_check_failed` set. The user tower's NumPy weights and the
manifest load at once, without TensorFlow.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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
    _tensorflow: Future[Any]  # embeddings.artifacts.LoadedTowers (the TF objects), checked
    _load_tensorflow: Callable[[], Any] | None = None  # set while the load has not started
    popular: list[tuple[str, float]] = field(default_factory=list)  # for users without history
    _starting: threading.Lock = field(default_factory=threading.Lock)

    def start_tensorflow(self) -> None:
        """Load the SavedModels and run the check in a background thread (once)."""
        with self._starting:
            load, self._load_tensorflow = self._load_tensorflow, None
        if load is None:
            return
        if not self._tensorflow.set_running_or_notify_cancel():
            return

        def run() -> None:
            try:
                self._tensorflow.set_result(load())
            except BaseException as exc:  # handed to whoever waits for the load
                self._tensorflow.set_exception(exc)

        threading.Thread(target=run, name="tensorflow-load", daemon=True).start()

    @property
    def _loaded(self) -> Any:
        """The checked SavedModels, waiting for the load (and starting it) if need be."""
        self.start_tensorflow()
        return self._tensorflow.result()

    @property
    def model_error(self) -> str | None:
        """Why the SavedModels cannot be served (failed load or check), once known."""
        if not self._tensorflow.done():
            return None
        error = self._tensorflow.exception()
        return None if error is None else str(error)

    def require_checked(self) -> None:
        """Load the SavedModels and check them against the NumPy user tower now (blocking);
        ModelLoadError when they cannot be served."""
        _ = self._loaded

    def when_tensorflow_loaded(self, callback: Callable[[Future[Any]], None]) -> None:
        self._tensorflow.add_done_callback(callback)

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


def load_towers(
    artifacts_dir: Path, model_version: str, tf_threads: int = 1, *, defer_tensorflow: bool = False
) -> Towers:
    """The model version's towers. `defer_tensorflow`: return before TensorFlow is imported;
    the SavedModels load (and are checked) on `start_tensorflow` or their first use."""
    from embeddings.artifacts import ArtifactError, read_manifest, resolve_model_dir

    path = Path(artifacts_dir) / model_version if model_version != "latest" else artifacts_dir
    try:
        directory = resolve_model_dir(Path(path))
        manifest = read_manifest(directory)
        params = numpy_user_tower.load_params(directory / "user_tower.npz")
        version, dim = str(manifest["version"]), int(manifest["dim"])
        history_length = int(manifest["history_length"])
    except (ArtifactError, OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the model from {path}: {exc}") from None

    def load_tensorflow() -> Any:
        from embeddings.artifacts import open_towers

        started = time.perf_counter()
        configure_tensorflow(tf_threads)
        try:
            loaded = open_towers(directory, manifest)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the SavedModels from {directory}: {exc}") from None
        _check_agreement(params, loaded, history_length, dim)
        log.info(
            "loaded model %s from %s (SavedModels checked) in %.2fs",
            version,
            directory,
            time.perf_counter() - started,
        )
        return loaded

    towers = Towers(
        version=version,
        dim=dim,
        history_length=history_length,
        manifest=manifest,
        user_params=params,
        _tensorflow=Future(),
        _load_tensorflow=load_tensorflow,
        popular=load_popular(directory),
    )
    if not defer_tensorflow:
        towers.start_tensorflow()
        towers._tensorflow.result()  # raises ModelLoadError, as before
    return towers


def _check_agreement(
    params: dict[str, np.ndarray], loaded: Any, history_length: int, dim: int
) -> None:
    rng = np.random.default_rng(0)
    history = rng.normal(size=(4, history_length, dim)).astype(np.float32)
    weights = (rng.random((4, history_length)) > 0.3).astype(np.float32)
    weights[:, 0] = 1.0
    fast = numpy_user_tower.forward(params, history, weights)
    exact = np.asarray(loaded.embed_users(history, weights), np.float32)
    gap = float(np.abs(fast - exact).max())
    if gap > AGREEMENT_TOLERANCE:
        raise ModelLoadError(f"NumPy user tower differs from the SavedModel by {gap:.2e}")

"""The trained towers of one model version, as the service runs them: NumPy, never TensorFlow.

Both towers run as NumPy on the weights the export wrote beside the SavedModels (the user tower
on every request, the movie tower on the movies webhooks add), so a replica neither imports nor
waits for TensorFlow (docs/decisions, "Serving without TensorFlow"). The export refused any
version whose NumPy towers differ from its SavedModels; what is checked here, at load, is that
this process computes what the export computed: the NumPy towers must reproduce the version's
probe (inputs and the SavedModels' outputs, `probe.json`), or the version is refused with
ModelLoadError.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import numpy_movie_tower, numpy_user_tower
from embeddings.data import Movie as ProbeMovie
from embeddings.numpy_movie_tower import NumpyMovieTower
from service.store import Movie

log = logging.getLogger(__name__)
AGREEMENT_TOLERANCE = 1e-4  # this machine's NumPy vs the export's SavedModels (other CPU, BLAS)
PROBE_FILE = "probe.json"


class ModelLoadError(Exception):
    """The model version cannot be served; startup (or the swap to it) must fail."""


@dataclass(eq=False)
class Towers:
    version: str
    directory: Path
    dim: int
    history_length: int
    manifest: dict[str, Any]
    user_params: dict[str, np.ndarray]
    movie_tower: NumpyMovieTower
    popular: list[tuple[str, float]] = field(default_factory=list)  # for users without history

    def embed_user(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Movie vectors newest first [n, dim] and their weights [n] -> one unit vector.

        Only the newest min(n, L) events go in, unpadded (padding is masked in both towers, so
        the vector is the padded one's): the sequential tower's cost grows with L squared.
        An empty history is one padding slot: the tower's fixed vector.
        """
        n = min(len(history), self.history_length)
        if n == 0:
            rows = np.zeros((1, 1, self.dim), np.float32)
            row_weights = np.zeros((1, 1), np.float32)
        else:
            rows = np.asarray(history[:n], np.float32)[None]
            row_weights = np.asarray(weights[:n], np.float32)[None]
        vector: np.ndarray = numpy_user_tower.forward(self.user_params, rows, row_weights)[0]
        return vector

    def embed_movies(self, movies: Sequence[Movie]) -> np.ndarray:
        """The movie tower over stored records: float32 [len(movies), dim]."""
        return self.movie_tower.embed(movies)


def load_popular(model_dir: Path) -> list[tuple[str, float]]:
    """Most-popular movies of the training data, for users without history."""
    path = model_dir / "popular.json"
    if not path.is_file():
        return []
    return [(str(mid), float(score)) for mid, score in json.loads(path.read_text("utf-8"))]


def load_towers(artifacts_dir: Path, model_version: str) -> Towers:
    """The model version's NumPy towers, checked against its probe (ModelLoadError if not)."""
    from embeddings.artifacts import ArtifactError, read_manifest, resolve_model_dir

    started = time.perf_counter()
    path = Path(artifacts_dir) / model_version if model_version != "latest" else artifacts_dir
    try:
        directory = resolve_model_dir(Path(path))
        manifest = read_manifest(directory)
        version, dim = str(manifest["version"]), int(manifest["dim"])
        history_length = int(manifest["history_length"])
    except (ArtifactError, OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the model from {path}: {exc}") from None
    if not numpy_movie_tower.has_movie_tower(directory) or not (directory / PROBE_FILE).is_file():
        raise ModelLoadError(
            f"model {version} ({directory}) was exported before the service dropped "
            f"TensorFlow: it has no {numpy_movie_tower.WEIGHTS_FILE} or {PROBE_FILE}. Add them "
            f"with `movie-recs add-numpy-towers --model {directory}` (it checks them against "
            "the SavedModels), or retrain"
        )
    try:
        towers = Towers(
            version=version,
            directory=directory,
            dim=dim,
            history_length=history_length,
            manifest=manifest,
            user_params=numpy_user_tower.load_params(directory / "user_tower.npz"),
            movie_tower=numpy_movie_tower.load(directory),
            popular=load_popular(directory),
        )
        probe = json.loads((directory / PROBE_FILE).read_text("utf-8"))
        _check_probe(towers, probe)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"cannot load model {version} from {directory}: {exc}") from None
    log.info(
        "loaded model %s from %s (NumPy towers checked against its probe) in %.2fs",
        version,
        directory,
        time.perf_counter() - started,
    )
    return towers


def _check_probe(towers: Towers, probe: dict[str, Any]) -> None:
    """Both NumPy towers must give the SavedModels' outputs the export recorded."""
    movies = [
        ProbeMovie(m["id"], m["title"], m["year"], tuple(m["genres"]), tuple(m["tags"]))
        for m in probe["movies"]
    ]
    expected_movies = np.asarray(probe["movie_vectors"], np.float32)
    history = np.asarray(probe["movie_vectors"], np.float32)[np.asarray(probe["history"])]
    users = numpy_user_tower.forward(towers.user_params, history, np.asarray(probe["weights"]))
    gaps = {
        "movie tower": float(np.abs(towers.movie_tower.embed(movies) - expected_movies).max()),
        "user tower": float(np.abs(users - np.asarray(probe["user_vectors"], np.float32)).max()),
    }
    for tower, gap in gaps.items():
        if not gap <= AGREEMENT_TOLERANCE:  # NaN fails too
            raise ModelLoadError(
                f"model {towers.version}: the NumPy {tower} differs from the SavedModel by "
                f"{gap:.2e} on the export's probe (> {AGREEMENT_TOLERANCE:.0e})"
            )

"""Write one model version: both towers as SavedModels with fixed signatures, their NumPy
copies (what the service runs), and their data.

Layout of `artifacts/<version>/` (the contract the service loads; see embeddings/README.md):
movie_tower/, user_tower/ (SavedModels, `serving_default`), user_tower.npz, movie_tower.npz +
movie_tower.json, probe.json, vocab/*.txt, movie_vectors.npy + movie_ids.json, manifest.json.
`artifacts/latest` names the newest version.
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

from embeddings import numpy_movie_tower, numpy_user_tower
from embeddings.artifacts import ExportError, LoadedTowers
from embeddings.data import Movie
from embeddings.features import (
    FIRST_YEAR,
    GENRES,
    LAST_YEAR,
    TAG_TOKENS,
    TITLE_TOKENS,
    VOCAB_FILES,
    YEARS_PER_BUCKET,
    MovieEncoder,
    Vocabularies,
)
from embeddings.model import MovieTower, SequentialUserTower, UserTower
from embeddings.movie_inputs import MovieRecord, embed_movies

DIR_MODE = 0o755
FILE_MODE = 0o644
NUMPY_TOLERANCE = 1e-5  # NumPy vs SavedModel, per vector component
PROBE_FILE = "probe.json"
PROBE_MOVIES = 64  # catalog movies in the probe, besides the odd ones
# Inputs a catalog may send that training never saw: the export checks the NumPy tower on them
# too, and they go into the probe a replica checks at load.
ODD_MOVIES = (
    Movie("", "", None, (), ()),
    Movie("no-such-id", "Zyzzyva Qwertyuiop", 2031, ("Not A Genre",), ("xyzzy",)),
    Movie(" 1 ", "  Toy Story (1995)  ", 1995, (" Animation ", "", "Animation"), ("|", "")),
    Movie("x", "Amélie — Le Fabuleux Destin d'Amélie Poulain (2001\u20132002)", 1850, (), ("été",)),
    Movie("y", "İstanbul \u212a 東京 \u216b \uff21\uff22 (1953)\n", -5, ("Drama|Comedy",), ()),
    Movie("z", " ".join(["the", "love", "story", "of", "man", "war"] * 40), 0, ("Drama",), ()),
    Movie("t", "Heat", None, (), tuple(f"tag{i} the man" for i in range(100))),
)


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


def _user_module(tower: UserTower | SequentialUserTower, length: int, dim: int) -> tf.Module:
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


def user_tower_params(tower: UserTower | SequentialUserTower) -> dict[str, np.ndarray]:
    """The weights `embeddings.numpy_user_tower.forward` needs, by name."""
    if isinstance(tower, SequentialUserTower):
        return tower.numpy_params()
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
    user_tower: UserTower | SequentialUserTower,
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
    save_numpy_movie_tower(directory, movie_tower_params(movie_tower), vocabularies)


def movie_tower_params(tower: MovieTower) -> dict[str, np.ndarray]:
    """The weights `embeddings.numpy_movie_tower` needs, by name."""
    tables = {
        name: getattr(tower, name).embeddings
        for name in ("movie_id", "genres", "title", "tags", "year")
    }
    dense = {
        f"{name}_{part}": getattr(getattr(tower, name), part)
        for name in ("hidden", "project")
        for part in ("kernel", "bias")
    }
    return {name: np.asarray(value.numpy()) for name, value in {**tables, **dense}.items()}


def save_numpy_movie_tower(
    directory: Path, params: Mapping[str, np.ndarray], vocabularies: Vocabularies
) -> None:
    """movie_tower.npz (weights) + movie_tower.json (what `MovieEncoder` was built with)."""
    weights: dict[str, Any] = dict(params)  # Any: savez's **kwds are untyped
    np.savez(directory / numpy_movie_tower.WEIGHTS_FILE, **weights)
    spec = {
        "format": numpy_movie_tower.ENCODER_FORMAT,
        "vocabularies": {name: getattr(vocabularies, name) for name in VOCAB_FILES},
        "widths": {"genres": GENRES, "title": TITLE_TOKENS, "tags": TAG_TOKENS},
        "years": {"first": FIRST_YEAR, "last": LAST_YEAR, "per_bucket": YEARS_PER_BUCKET},
    }
    (directory / numpy_movie_tower.ENCODER_FILE).write_text(json.dumps(spec), "utf-8")


def check_numpy_towers(
    directory: Path,
    towers: LoadedTowers,
    movies: Sequence[MovieRecord],
    vectors: np.ndarray,
    dim: int,
    history_length: int,
) -> float:
    """Compare the NumPy towers, loaded from `directory` as the service loads them, with the
    SavedModels: every catalog movie (`vectors`: the SavedModel's), the odd inputs, and user
    histories made of them. ExportError past `NUMPY_TOLERANCE`; else write the probe a replica
    checks at load and return the largest gap."""
    movie_tower = numpy_movie_tower.load(directory)
    user_params = numpy_user_tower.load_params(directory / "user_tower.npz")
    odd_vectors = embed_movies(towers.movie_tower, ODD_MOVIES, dim)
    gaps = {
        "catalog movies": _gap(movie_tower.embed(movies), vectors),
        "odd movies": _gap(movie_tower.embed(ODD_MOVIES), odd_vectors),
    }
    probe_movies = [*movies[:PROBE_MOVIES], *ODD_MOVIES]
    probe_vectors = np.concatenate([vectors[:PROBE_MOVIES], odd_vectors])
    history, weights = _probe_histories(len(probe_movies), history_length)
    users = towers.embed_users(probe_vectors[history], weights)
    gaps["users"] = _gap(
        numpy_user_tower.forward(user_params, probe_vectors[history], weights), users
    )
    worst = max(gaps, key=lambda k: gaps[k])
    if gaps[worst] > NUMPY_TOLERANCE:
        raise ExportError(
            f"the NumPy towers differ from the SavedModels on the {worst} by "
            f"{gaps[worst]:.2e} (> {NUMPY_TOLERANCE:.0e}): not published"
        )
    probe = {
        "movies": [
            {
                "id": m.id,
                "title": m.title,
                "genres": list(m.genres),
                "tags": list(m.tags),
                "year": m.year,
            }
            for m in probe_movies
        ],
        "movie_vectors": probe_vectors.tolist(),
        "history": history.tolist(),
        "weights": weights.tolist(),
        "user_vectors": users.tolist(),
    }
    (directory / PROBE_FILE).write_text(json.dumps(probe), "utf-8")
    return gaps[worst]


def add_numpy_towers(directory: Path, movies: Sequence[MovieRecord]) -> float:
    """Give a version exported before the service dropped TensorFlow what it now loads: the
    NumPy movie tower, from the SavedModel's own variables and the version's vocabularies, and
    the probe, checked as an export checks (over `movies`, the SavedModel embedding them too).
    ExportError (and nothing written) when they differ; the largest gap otherwise."""
    from embeddings.artifacts import open_towers, read_manifest

    manifest = read_manifest(directory)
    reader = tf.train.load_checkpoint(str(directory / "movie_tower" / "variables" / "variables"))
    variable = {
        **{n: f"{n}/_embeddings" for n in ("movie_id", "genres", "title", "tags", "year")},
        **{f"{n}_kernel": f"{n}/_kernel" for n in ("hidden", "project")},
        **{f"{n}_bias": f"{n}/bias" for n in ("hidden", "project")},
    }
    params = {
        name: np.asarray(reader.get_tensor(f"tower/{path}/.ATTRIBUTES/VARIABLE_VALUE"))
        for name, path in variable.items()
    }
    staging = Path(tempfile.mkdtemp(prefix=".numpy-", dir=directory.parent))
    try:
        for name in ("manifest.json", "user_tower.npz"):
            shutil.copy(directory / name, staging / name)
        save_numpy_movie_tower(staging, params, Vocabularies.load(directory / "vocab"))
        towers = open_towers(directory, manifest)
        dim, length = int(manifest["dim"]), int(manifest["history_length"])
        vectors = embed_movies(towers.movie_tower, movies, dim)
        gap = check_numpy_towers(staging, towers, movies, vectors, dim, length)
        for name in (numpy_movie_tower.WEIGHTS_FILE, numpy_movie_tower.ENCODER_FILE, PROBE_FILE):
            (staging / name).chmod(FILE_MODE)
            (staging / name).replace(directory / name)
    finally:
        shutil.rmtree(staging)
    return gap


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max()) if a.size else 0.0


def _probe_histories(movies: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Four histories of probe movies (indices) with weights: full, short, one, a rating mix."""
    rng = np.random.default_rng(0)
    history = rng.integers(0, movies, size=(4, length))
    weights = np.zeros((4, length), np.float32)
    weights[0] = 1.0
    weights[1, :7] = 1.0
    weights[2, 0] = 1.0
    weights[3] = rng.choice(np.array([0.1, 0.5, 1.0], np.float32), size=length)
    return history, weights


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

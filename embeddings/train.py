"""Train, export and evaluate one model version, deterministically for a given seed."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from embeddings.artifacts import open_towers
from embeddings.config import TrainConfig
from embeddings.data import BUNDLED_DATA, Dataset, load_dataset
from embeddings.evaluate import evaluate, model_ranking
from embeddings.examples import Examples, build_examples
from embeddings.export import (
    check_numpy_towers,
    publish,
    save_catalog,
    save_popular,
    save_towers,
    staging_dir,
    write_manifest,
)
from embeddings.features import (
    YEAR_BUCKETS,
    MovieEncoder,
    Vocabularies,
    build_vocabularies,
    encode_catalog,
)
from embeddings.model import MovieTower, SequentialUserTower, TwoTowerTrainer, UserTower
from embeddings.movie_inputs import embed_movies
from embeddings.optimizer import optimizer_for
from embeddings.split import EvalCases, Split, leave_last_out

TINY_USERS = 40
TINY_CONFIG = TrainConfig(batch_size=256, epochs=2, patience=1, movie_hidden=64, user_hidden=32)


@dataclass(frozen=True)
class TrainResult:
    directory: Path
    manifest: dict[str, Any]


class ValidationRanking(keras.callbacks.Callback):
    """Full-ranking HR/NDCG on the validation cases after each epoch; keeps the best weights.

    It runs before EarlyStopping and the progress bar, so both see `val_ndcg@k` in the logs.
    """

    def __init__(self, trainer: TwoTowerTrainer, cases: EvalCases, length: int, k: int) -> None:
        super().__init__()
        self.trainer, self.cases, self.length, self.k = trainer, cases, length, k
        self.best = -1.0
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        vectors = self.trainer.catalog_vectors()
        ranking = model_ranking(
            self.cases,
            vectors,
            lambda h, w: self.trainer.user_tower(h, w).numpy(),
            self.length,
        )
        ndcg = ranking.ndcg(self.k)
        if logs is not None:
            logs[f"val_hr@{self.k}"] = ranking.hit_rate(self.k)
            logs[f"val_ndcg@{self.k}"] = ndcg
        if ndcg > self.best:
            self.best, self.best_epoch = ndcg, epoch
            self.best_weights = self.trainer.get_weights()

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.trainer.set_weights(self.best_weights)


def model_version(data_hash: str, config: TrainConfig, seed: int) -> str:
    payload = json.dumps(
        {"data": data_hash, "config": config.to_dict(), "seed": seed}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def train(
    dataset: Dataset,
    artifacts: Path,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    max_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Split, train, export to a staging directory, evaluate the export, then publish it.

    `verbose="auto"`: Keras' progress bar on a terminal, one line per epoch otherwise (a file or
    a CI log would get a wall of escape codes). `max_steps`: stop each epoch after this many
    steps (the benchmark's measured slice of an epoch too long to run whole; not for models);
    `callbacks`: more Keras callbacks for the fit (the benchmark's step clock).
    """
    if verbose == "auto" and not sys.stdout.isatty():
        verbose = 2
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    length = config.history_length

    prepared = prepare(dataset, config, seed)
    config = prepared.config  # with the data's choices made: the manifest and version say them
    split, vocabularies, encoder = prepared.split, prepared.vocabularies, prepared.encoder
    examples, trainer = prepared.examples, prepared.trainer
    movie_tower, user_tower = trainer.movie_tower, trainer.user_tower
    log(
        f"{len(examples)} training examples, {int(prepared.trained.sum())} trained movies, "
        f"{int(split.cold.sum())} cold movies, {len(split.users)} users; "
        + (
            f"history vectors from a cache refreshed every {config.history_refresh_steps} steps"
            if config.history_refresh_steps
            else "history vectors through the movie tower every step"
        )
    )
    validation = _fit(
        trainer,
        examples,
        split.cases("validation"),
        config,
        seed,
        verbose,
        log,
        max_steps,
        callbacks,
    )
    training_seconds = time.perf_counter() - started

    staging = staging_dir(artifacts)
    save_towers(
        staging,
        encoder=encoder,
        movie_tower=movie_tower,
        user_tower=user_tower,
        vocabularies=vocabularies,
        history_length=length,
        dim=config.dim,
    )
    towers = open_towers(staging, {})  # evaluate what ships, not the in-memory model
    vectors = embed_movies(towers.movie_tower, dataset.movies, config.dim)
    save_catalog(staging, split.movie_ids, vectors)
    # What the service runs (NumPy) must be what was evaluated (the SavedModels): or no version.
    numpy_gap = check_numpy_towers(staging, towers, dataset.movies, vectors, config.dim, length)
    save_popular(staging, split.movie_ids, [m for m, _ in split.train_sequences()])
    metrics = evaluate(
        split,
        vectors,
        towers.embed_users,
        length=length,
        k=config.top_k,
        max_cold_cases=config.max_eval_cases,
        seed=seed,
    )
    data_hash = dataset.content_hash()
    version = model_version(data_hash, config, seed)
    manifest = {
        "version": version,
        "dim": config.dim,
        "history_length": length,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(training_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "seed": seed,
        "config": config.to_dict(),
        "metrics": metrics,
        "data_hash": data_hash,
        "num_movies": len(split.movie_ids),
        "best_epoch": validation.best_epoch + 1,
        f"validation_ndcg@{config.top_k}": round(validation.best, 6),
        "numpy_max_gap": numpy_gap,
        "title_format": "without the (year) suffix; a trailing (YYYY) is stripped anyway",
        "report": {**dataset.report, **split.report},
    }
    write_manifest(staging, manifest)
    del towers
    return TrainResult(publish(staging, artifacts, version), manifest)


@dataclass(frozen=True)
class Prepared:
    """Everything a fit needs, built from the data: the split, the vocabularies and encoder,
    the examples and the (unbuilt) trainer, and the config with the data's choices made."""

    config: TrainConfig
    split: Split
    trained: np.ndarray  # bool [num_movies]: in some user's training sequence
    vocabularies: Vocabularies
    encoder: MovieEncoder
    examples: Examples
    trainer: TwoTowerTrainer


def prepare(dataset: Dataset, config: TrainConfig, seed: int) -> Prepared:
    """Split, vocabularies, encoded catalog, examples and the towers (also the step profiler's)."""
    split = leave_last_out(
        dataset,
        min_rating=config.min_rating,
        cold_fraction=config.cold_fraction,
        seed=seed,
        events=config.eval_events,
        dislike_max_rating=config.dislike_max_rating,
    )
    sequences = split.train_sequences()
    trained = np.zeros(len(split.movie_ids), dtype=bool)
    for movies, _ in sequences:
        trained[movies] = True
    config = config.for_catalog(int(trained.sum()))
    vocabularies = build_vocabularies(dataset.movies, trained, min_count=config.min_word_count)
    encoder = MovieEncoder(vocabularies)
    catalog = encode_catalog(encoder, dataset.movies)
    examples = build_examples(sequences, config.history_length, config.dislike_targets)
    movie_tower = MovieTower(
        vocabularies.sizes(),
        year_buckets=YEAR_BUCKETS,
        dim=config.dim,
        hidden=config.movie_hidden,
        word_dim=config.word_dim,
        id_dropout=config.id_dropout,
        seed=seed,
    )
    user_tower = user_tower_for(config, seed)
    trainer = TwoTowerTrainer(
        movie_tower,
        user_tower,
        catalog,
        _log_q(examples, len(split.movie_ids)),
        config.temperature,
        config.history_refresh_steps or 0,
        config.mask_seen,
        config.negatives,
        trained,
    )
    return Prepared(config, split, trained, vocabularies, encoder, examples, trainer)


def user_tower_for(config: TrainConfig, seed: int) -> UserTower | SequentialUserTower:
    if config.user_tower == "sequential":
        return SequentialUserTower(
            history_length=config.history_length,
            dim=config.dim,
            hidden=config.user_hidden,
            blocks=config.user_blocks,
            heads=config.user_heads,
            dropout=config.user_dropout,
            seed=seed,
            pooling_base=config.user_pooling_base,
            newest_residual=config.user_newest_residual,
        )
    return UserTower(
        history_length=config.history_length, dim=config.dim, hidden=config.user_hidden
    )


def _fit(
    trainer: TwoTowerTrainer,
    examples: Examples,
    validation_cases: EvalCases,
    config: TrainConfig,
    seed: int,
    verbose: int | str,
    log: Callable[[str], None],
    max_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> ValidationRanking:
    """Fit with early stopping on validation NDCG; the best epoch's weights are kept."""
    _compile(trainer, examples, config)
    validation = ValidationRanking(
        trainer,
        validation_cases.sample(config.max_eval_cases, seed),
        config.history_length,
        config.top_k,
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor=f"val_ndcg@{config.top_k}", mode="max", patience=config.patience
    )
    trainer.fit(
        _batches(examples, config.batch_size, seed),
        epochs=config.epochs,
        callbacks=[*callbacks, validation, stopping, EpochProgress(config.epochs, log)],
        shuffle=False,  # the generator shuffles, seeded
        verbose=verbose,
        steps_per_epoch=max_steps,
    )
    validation.restore_best()
    return validation


def fit_steps(
    trainer: TwoTowerTrainer,
    examples: Examples,
    config: TrainConfig,
    seed: int,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> None:
    """The first `steps` steps of one epoch, exactly as `_fit` runs them, without validation
    (the benchmark's timing of steps at sizes where the validation ranking takes long)."""
    _compile(trainer, examples, config)
    trainer.fit(
        _batches(examples, config.batch_size, seed),
        epochs=1,
        callbacks=list(callbacks),
        shuffle=False,
        verbose=0,
        steps_per_epoch=steps,
    )


def _compile(trainer: TwoTowerTrainer, examples: Examples, config: TrainConfig) -> None:
    trainer.compile(optimizer=optimizer_for(config))
    first = examples.batch(examples.positions[:1])
    trainer((first[0], first[1]))  # build the weights before fit


def train_directory(
    data_dir: Path, artifacts: Path, *, config: TrainConfig = TrainConfig(), seed: int = 0
) -> TrainResult:
    return train(load_dataset(data_dir), artifacts, config=config, seed=seed)


def tiny_dataset(data_dir: Path, users: int = TINY_USERS) -> Dataset:
    """The first `users` users of a dataset (by id), with the whole catalog.

    Every movie stays, as in a full training: the exported vectors cover the catalog the service
    imports, and movies none of these users rated are simply cold.
    """
    full = load_dataset(data_dir)
    ratings = full.ratings
    chosen = sorted(
        range(len(ratings.users)), key=lambda u: (len(ratings.users[u]), ratings.users[u])
    )
    rows = np.isin(ratings.user_index, chosen[:users])
    ratings = ratings.subset(rows)
    return Dataset(movies=full.movies, ratings=ratings, report=full.report)


def train_tiny(
    artifacts: Path,
    *,
    data_dir: Path | None = None,
    seed: int = 0,
    config: TrainConfig = TINY_CONFIG,
) -> Path:
    """Train and publish a tiny real model in seconds (for tests); returns its version directory.

    Same code path and artifact layout as a full training, on 40 users of the bundled data.
    """
    if data_dir is None:
        data_dir = BUNDLED_DATA
    result = train(
        tiny_dataset(data_dir),
        Path(artifacts),
        config=config,
        seed=seed,
        verbose=0,
        log=_quiet,
    )
    return result.directory


def _quiet(_: str) -> None:
    return None


def _log_q(examples: Examples, num_movies: int) -> np.ndarray:
    """log of each movie's share of training targets: the in-batch sampling probability."""
    counts = np.bincount(examples.targets(), minlength=num_movies).astype(np.float64)
    return np.asarray(np.log(np.maximum(counts, 1.0) / counts.sum()), np.float32)


def _batches(examples: Examples, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches cut on the fly from the example positions, in a new seeded order each epoch."""
    epochs = itertools.count()

    def epoch() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        yield from examples.batches(batch_size, np.random.default_rng([seed, next(epochs)]))

    length = examples.length
    signature = (
        tf.TensorSpec((None, length), tf.int32),
        tf.TensorSpec((None, length), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    )
    steps = -(-len(examples) // batch_size)
    data = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return data.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


class EpochProgress(keras.callbacks.Callback):
    """Elapsed time and an ETA for the remaining epochs (if early stopping does not end it),
    and within a long epoch (MovieLens 25M: an hour) a line every `every` seconds."""

    def __init__(self, epochs: int, log: Callable[[str], None], every: float = 300.0) -> None:
        super().__init__()
        self.epochs, self.log, self.every = epochs, log, every
        self.started = self.epoch_started = self.last = time.perf_counter()
        self.epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.epoch_started = epoch, time.perf_counter()
        self.last = self.epoch_started

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        self.last = now
        steps = self.params.get("steps") or 0
        rate = (batch + 1) / (now - self.epoch_started)
        self.log(
            f"epoch {self.epoch + 1}: step {batch + 1}/{steps}, {rate:.2f} steps/s, "
            f"{(steps - batch - 1) / rate / 60:.1f} min left in this epoch"
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        left = (self.epochs - epoch - 1) * elapsed / (epoch + 1)
        self.log(
            f"epoch {epoch + 1}/{self.epochs}: {elapsed / 60:.1f} min so far, "
            f"at most {left / 60:.1f} min left (early stopping may end sooner)"
        )

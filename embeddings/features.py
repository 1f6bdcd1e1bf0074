"""Raw movie fields -> fixed-width integer features, with one TensorFlow function for both sides.

The same `MovieEncoder` encodes the catalog for training and runs inside the exported movie
tower, so a caller passes raw strings and can never tokenize differently from training.
Index 0 of every vocabulary means padding or unknown (out of vocabulary) and is ignored by the
tower: an unknown movie id falls back to the content path, an unknown word is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from embeddings.data import YEAR_SUFFIX, Movie
from embeddings.movie_inputs import tower_inputs

TITLE_TOKENS = 16
GENRES = 10
TAG_TOKENS = 32
FIRST_YEAR, LAST_YEAR, YEARS_PER_BUCKET = 1900, 2029, 5
YEAR_BUCKETS = (LAST_YEAR - FIRST_YEAR) // YEARS_PER_BUCKET + 2  # + unknown (0)
VOCAB_FILES = ("movie_ids", "genres", "title_tokens", "tags")


@dataclass(frozen=True)
class Vocabularies:
    """Known values per feature; value i (0-based) is encoded as i + 1."""

    movie_ids: list[str]
    genres: list[str]
    title_tokens: list[str]
    tags: list[str]

    def sizes(self) -> dict[str, int]:
        """Embedding table sizes, the 0 row included."""
        return {name: len(getattr(self, name)) + 1 for name in VOCAB_FILES}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in VOCAB_FILES:
            values = getattr(self, name)
            (directory / f"{name}.txt").write_text("".join(f"{v}\n" for v in values), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> Vocabularies:
        read = {n: (directory / f"{n}.txt").read_text("utf-8").splitlines() for n in VOCAB_FILES}
        return cls(**read)


def build_vocabularies(
    movies: Sequence[Movie], trained: np.ndarray, *, min_count: int = 2
) -> Vocabularies:
    """Vocabularies from the movies the model trains on (`trained` mask) only.

    Words seen in one movie only, and every word of a cold movie, stay unknown: a movie added
    after training meets unknown words too, so the cold measure stays honest.
    """
    known = [m for m, t in zip(movies, trained, strict=True) if t]
    titles = tokenize(tf.constant([m.title for m in known], dtype=tf.string)).to_list()
    tags = tokenize(tf.constant(["|".join(m.tags) for m in known], dtype=tf.string)).to_list()
    genres = Counter(g for m in known for g in m.genres)
    return Vocabularies(
        movie_ids=[m.id for m in known],
        genres=sorted(genres),
        title_tokens=_frequent(titles, min_count),
        tags=_frequent(tags, min_count),
    )


def _frequent(rows: list[list[bytes]], min_count: int) -> list[str]:
    """Words found in at least `min_count` movies, most frequent first (ties alphabetical)."""
    counts = Counter(word.decode() for row in rows for word in set(row))
    return sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased ASCII words and digits; everything else separates words."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[^a-z0-9]+", " ")
    return tf.strings.split(tf.strings.strip(text))


def encode_catalog(encoder: MovieEncoder, movies: Sequence[Movie]) -> dict[str, np.ndarray]:
    """Encode `Movie` rows with the exported encoder, so training sees what serving sees."""
    features = encoder(**tower_inputs(movies))
    return {name: value.numpy() for name, value in features.items()}


def _table(values: list[str]) -> tf.lookup.StaticHashTable:
    keys = tf.constant(values or [""], dtype=tf.string)
    ids = tf.range(1, len(values) + 1, dtype=tf.int64) if values else tf.zeros([1], tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), 0)


def _lookup(words: tf.RaggedTensor, vocab: tf.lookup.StaticHashTable, width: int) -> tf.Tensor:
    ids = tf.ragged.map_flat_values(vocab.lookup, words)
    ids = tf.ragged.boolean_mask(ids, ids > 0)  # unknown words are dropped, not counted
    return tf.cast(ids.to_tensor(default_value=0, shape=[None, width]), tf.int32)


class MovieEncoder(tf.Module):
    """Raw string fields -> int features. Exported inside the movie tower, tables included."""

    def __init__(self, vocabularies: Vocabularies) -> None:
        super().__init__(name="movie_encoder")
        self.movie_ids = _table(vocabularies.movie_ids)
        self.genres = _table(vocabularies.genres)
        self.title_tokens = _table(vocabularies.title_tokens)
        self.tags = _table(vocabularies.tags)

    def __call__(
        self,
        movie_id: tf.Tensor,
        title: tf.Tensor,
        genres: tf.Tensor,
        tags: tf.Tensor,
        year: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        words = movie_words(movie_id=movie_id, title=title, genres=genres, tags=tags)
        year = tf.cast(year, tf.int32)
        bucket = (tf.clip_by_value(year, FIRST_YEAR, LAST_YEAR) - FIRST_YEAR) // YEARS_PER_BUCKET
        return {
            "movie_id": tf.cast(self.movie_ids.lookup(words["movie_id"]), tf.int32),
            "genres": _lookup(words["genres"], self.genres, GENRES),
            "title": _lookup(words["title"], self.title_tokens, TITLE_TOKENS),
            "tags": _lookup(words["tags"], self.tags, TAG_TOKENS),
            "year": tf.where(year > 0, bucket + 1, 0),
        }


def movie_words(
    movie_id: tf.Tensor, title: tf.Tensor, genres: tf.Tensor, tags: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The strings `MovieEncoder` looks up (the id; ragged word lists), before any vocabulary:
    what `embeddings.numpy_movie_tower` must split exactly alike."""
    # Strip a "(1995)" suffix inside the model too, so titles work with or without it.
    title = tf.strings.regex_replace(title, YEAR_SUFFIX, "")
    return {
        "movie_id": tf.strings.strip(movie_id),
        "genres": tf.ragged.map_flat_values(tf.strings.strip, tf.strings.split(genres, "|")),
        "title": tokenize(title),
        "tags": tokenize(tags),
    }

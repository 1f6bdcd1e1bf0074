"""The movie tower in plain NumPy (no TensorFlow import): how a serving replica embeds a movie.

A version directory holds `movie_tower.npz` (the tower's weights) and `movie_tower.json` (the
encoder's vocabularies and widths), written by `embeddings.export`, which refuses a version
where `embed` differs from the `movie_tower` SavedModel by more than 1e-5 on any catalog movie
or odd input. The text rules copy `embeddings.features.MovieEncoder` (TensorFlow string ops,
RE2 regular expressions) rule for rule; where Python's defaults differ they are spelled out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.data import YEAR_SUFFIX
from embeddings.movie_inputs import MOVIE_BATCH, MovieRecord

WEIGHTS_FILE = "movie_tower.npz"
ENCODER_FILE = "movie_tower.json"
ENCODER_FORMAT = 1
WEIGHT_NAMES = (
    "movie_id",
    "genres",
    "title",
    "tags",
    "year",
    "hidden_kernel",
    "hidden_bias",
    "project_kernel",
    "project_bias",
)
VOCABULARIES = ("movie_ids", "genres", "title_tokens", "tags")

# tf.strings.strip is absl's StripAsciiWhitespace; RE2's \s lacks \v and its \d is ASCII; RE2's
# `$` is the end of the text only, where Python's also matches before a final newline.
ASCII_WHITESPACE = " \t\n\v\f\r"
_TITLE_YEAR = re.compile(
    YEAR_SUFFIX.replace(r"\s", "[\t\n\f\r ]").replace(r"\d", "[0-9]").removesuffix("$") + r"\Z"
)
_WORD = re.compile("[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """`features.tokenize`: lower-cased (Unicode) text, runs of ASCII letters and digits.

    tf.strings.lower(encoding="utf-8") ends the text at its first NUL (ICU reads a C string).
    """
    return _WORD.findall(text.split("\0", 1)[0].lower())


def movie_words(movie: MovieRecord) -> dict[str, list[str]]:
    """`features.movie_words` of one record: the id (one string) and the words looked up."""
    return {
        "movie_id": [movie.id.strip(ASCII_WHITESPACE)],
        "genres": [g.strip(ASCII_WHITESPACE) for g in "|".join(movie.genres).split("|")],
        "title": tokenize(_TITLE_YEAR.sub("", movie.title)),
        "tags": tokenize("|".join(movie.tags)),
    }


@dataclass(frozen=True)
class Encoder:
    """The vocabularies (value -> id, 0 unknown) and widths `MovieEncoder` was built with."""

    vocabularies: Mapping[str, Mapping[str, int]]
    widths: Mapping[str, int]  # genres, title, tags: the first known words kept
    first_year: int
    last_year: int
    years_per_bucket: int

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> Encoder:
        if spec.get("format") != ENCODER_FORMAT:
            raise ValueError(f"{ENCODER_FILE} format {spec.get('format')!r}, not {ENCODER_FORMAT}")
        vocabularies = {
            name: {value: i + 1 for i, value in enumerate(spec["vocabularies"][name])}
            for name in VOCABULARIES
        }
        years = spec["years"]
        return cls(
            vocabularies,
            {k: int(spec["widths"][k]) for k in ("genres", "title", "tags")},
            int(years["first"]),
            int(years["last"]),
            int(years["per_bucket"]),
        )

    def features(self, movies: Sequence[MovieRecord]) -> dict[str, np.ndarray]:
        """The integer features `MovieEncoder` computes for the same records."""
        vocab, widths = self.vocabularies, self.widths
        n = len(movies)
        out = {
            "movie_id": np.zeros(n, np.int64),
            "genres": np.zeros((n, widths["genres"]), np.int64),
            "title": np.zeros((n, widths["title"]), np.int64),
            "tags": np.zeros((n, widths["tags"]), np.int64),
            "year": np.zeros(n, np.int64),
        }
        for row, movie in enumerate(movies):
            words = movie_words(movie)
            out["movie_id"][row] = vocab["movie_ids"].get(words["movie_id"][0], 0)
            _put(out["genres"][row], words["genres"], vocab["genres"])
            _put(out["title"][row], words["title"], vocab["title_tokens"])
            _put(out["tags"][row], words["tags"], vocab["tags"])
            year = movie.year or 0
            if year > 0:
                clipped = min(max(year, self.first_year), self.last_year)
                out["year"][row] = (clipped - self.first_year) // self.years_per_bucket + 1
        return out


def _put(row: np.ndarray, words: Sequence[str], vocabulary: Mapping[str, int]) -> None:
    """The first `len(row)` known words' ids; unknown words are dropped, not counted."""
    known = [i for i in (vocabulary.get(w, 0) for w in words) if i > 0][: len(row)]
    row[: len(known)] = known


def _bag_mean(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean embedding of each row's non-zero ids; a row without any -> 0."""
    present = (ids > 0).astype(np.float32)
    total = np.einsum("bw,bwd->bd", present, table[ids])
    count = np.maximum(present.sum(axis=1), 1.0)
    result: np.ndarray = total / count[:, None]
    return result


@dataclass(frozen=True)
class NumpyMovieTower:
    """Raw movie records -> L2-normalized float32 vectors, equal to the SavedModel within 1e-5."""

    weights: Mapping[str, np.ndarray]
    encoder: Encoder

    @property
    def dim(self) -> int:
        return int(self.weights["project_bias"].shape[0])

    def embed(self, movies: Sequence[MovieRecord]) -> np.ndarray:
        """float32 [len(movies), dim], in batches (a bag of words is [batch, width, word_dim])."""
        parts = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(movies), MOVIE_BATCH):
            parts.append(self.forward(self.encoder.features(movies[start : start + MOVIE_BATCH])))
        return np.concatenate(parts)

    def forward(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """`embeddings.model.MovieTower` at inference: content MLP + id embedding, normalized."""
        w = self.weights
        content = np.concatenate(
            [
                _bag_mean(w["genres"], features["genres"]),
                _bag_mean(w["title"], features["title"]),
                _bag_mean(w["tags"], features["tags"]),
                w["year"][features["year"]],
            ],
            axis=-1,
        )
        hidden = np.maximum(content @ w["hidden_kernel"] + w["hidden_bias"], 0.0)
        ids = features["movie_id"]
        vector = hidden @ w["project_kernel"] + w["project_bias"]
        vector = vector + w["movie_id"][ids] * (ids > 0)[:, None]
        norm = np.maximum(np.linalg.norm(vector, axis=-1, keepdims=True), 1e-12)
        unit: np.ndarray = (vector / norm).astype(np.float32)
        return unit


def has_movie_tower(directory: Path) -> bool:
    return (directory / WEIGHTS_FILE).is_file() and (directory / ENCODER_FILE).is_file()


def load(directory: Path) -> NumpyMovieTower:
    """The NumPy movie tower of a version directory (OSError, KeyError, ValueError if broken)."""
    with np.load(directory / WEIGHTS_FILE) as archive:
        weights = {name: archive[name].astype(np.float32) for name in WEIGHT_NAMES}
    spec = json.loads((directory / ENCODER_FILE).read_text("utf-8"))
    return NumpyMovieTower(weights, Encoder.from_json(spec))

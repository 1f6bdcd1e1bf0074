"""What the benchmarks measure recall@10 on. The measure is the service's own
(`service.index.live.recall_at_k` against `exact_neighbours`), the one the IVF build calibrates
nprobe with, so a benchmark and a build mean the same number."""

from __future__ import annotations

import numpy as np

from service.index.live import BaseIndex, recall_at_k


def queries_near(vectors: np.ndarray, count: int, seed: int = 3) -> np.ndarray:
    """Catalog vectors plus noise in every direction, normalized: a user vector near one taste
    (and harder for IVF than a vector that sits inside one cell)."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), count)]
    queries = picked + 0.3 * rng.normal(size=(count, vectors.shape[1]))
    return np.asarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), np.float32)


def recall(base: BaseIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    """Recall@k of a built index at its current nprobe against `truth`
    (`exact_neighbours(base.vectors, queries, k)`)."""
    return recall_at_k(base.faiss_index, base.vectors, queries, truth, base.rerank)

"""The two baselines the model must beat, fitted on the same training interactions as the model.

- most popular: score = number of training interactions of the movie;
- item co-occurrence: score(j) = sum over the user's history h of cosine(h, j), the cosine of the
  two movies' binary user vectors (who watched them) in the training interactions (each user's
  most recent ones only, when the data is too large for all: `recent_cap`).

Both are sparse: the users x movies matrix of MovieLens 25M is 162k x 62k (40 GB dense), and
its item-item cosines are kept exactly when they fit a budget (as on ml-latest-small, 23.6M
entries), otherwise as each movie's most similar movies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

# The item-item product costs sum(interactions per user ^ 2): 6e7 on ml-latest-small, 2e9 on
# 1M synthetic ratings, ~5e10 on MovieLens 25M. Above this budget each user counts with their
# most recent interactions only (the same cap for everyone), so the cost stays bounded.
PRODUCT_BUDGET = 1_000_000_000
SIMILARITY_BUDGET = 32_000_000  # item-item entries kept (8 bytes each; ml-latest-small has 23.6M)
BLOCK_ENTRIES = 16_000_000  # dense-equivalent size of one block of similarity rows


def training_matrix(train_sequences: Sequence[np.ndarray], num_movies: int) -> sparse.csr_matrix:
    """Binary rows x movies matrix of movie-index sequences (float32, sparse): the training
    interactions, or a chunk of evaluation histories."""
    sizes = np.array([len(m) for m in train_sequences], dtype=np.int64)
    columns = np.concatenate([np.asarray(m, np.int64) for m in train_sequences] + [np.zeros(0)])
    rows = np.repeat(np.arange(len(train_sequences)), sizes)
    matrix = sparse.csr_matrix(
        (np.ones(len(columns), np.float32), (rows, columns.astype(np.int64))),
        shape=(len(train_sequences), num_movies),
    )
    matrix.data[:] = 1.0  # a movie twice in one sequence still counts once
    return matrix


def recent_cap(sizes: np.ndarray, budget: int = PRODUCT_BUDGET) -> int | None:
    """The largest per-user cap K with sum(min(size, K)^2) <= budget; None: no cap needed."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if (sizes**2).sum() <= budget:
        return None
    low, high = 1, int(sizes.max())
    while low < high:
        middle = (low + high + 1) // 2
        if (np.minimum(sizes, middle) ** 2).sum() <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def popularity_scores(train: sparse.csr_matrix, num_cases: int) -> np.ndarray:
    """The same popularity row for every case."""
    counts = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
    return np.broadcast_to(counts, (num_cases, train.shape[1]))


def item_similarity(train: sparse.csr_matrix, budget: int = SIMILARITY_BUDGET) -> sparse.csr_matrix:
    """Movies x movies cosine of binary user vectors: exact if it holds at most `budget` entries,
    otherwise each movie's `budget // movies` most similar movies.

    Computed in blocks of rows (X D^-1/2)^T_block (X D^-1/2), so the full items x items matrix
    never exists at once; once the exact entries pass the budget, every block is cut to its rows'
    top entries, the ones kept so far included (so the result does not depend on block order).
    """
    num_movies = train.shape[1]
    counts = np.asarray(train.sum(axis=0), dtype=np.float64).ravel()
    inv_sqrt = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    normalized = (train @ sparse.diags(inv_sqrt.astype(np.float32))).tocsc()
    transposed = normalized.T.tocsr()
    keep = max(1, budget // max(num_movies, 1))
    step = max(1, BLOCK_ENTRIES // max(num_movies, 1))
    blocks: list[sparse.csr_matrix] = []
    total, pruning = 0, False
    for begin in range(0, num_movies, step):
        block = (transposed[begin : begin + step] @ normalized).tocsr()
        if not pruning and total + block.nnz > budget:
            pruning = True
            blocks = [_top_per_row(b, keep) for b in blocks]
        blocks.append(_top_per_row(block, keep) if pruning else block)
        total += blocks[-1].nnz
    if not blocks:
        return sparse.csr_matrix((0, num_movies), dtype=np.float32)
    return sparse.vstack(blocks, format="csr")


def _top_per_row(matrix: sparse.csr_matrix, keep: int) -> sparse.csr_matrix:
    """Each row's `keep` largest entries (ties: the lower column)."""
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    rows, columns, values = [], [], []
    for row in range(matrix.shape[0]):
        begin, end = indptr[row], indptr[row + 1]
        cols, vals = indices[begin:end], data[begin:end]
        if len(vals) > keep:  # ties: the lower column
            chosen = np.lexsort((cols, -vals))[:keep]
            cols, vals = cols[chosen], vals[chosen]
        rows.append(np.full(len(cols), row))
        columns.append(cols)
        values.append(vals)
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=matrix.shape,
    )


def cooccurrence_scores(
    similarity: sparse.csr_matrix, histories: Sequence[np.ndarray]
) -> np.ndarray:
    """Sum of the item-item cosines of each history's movies: float32 [len(histories), movies].

    The caller passes a chunk of cases: the result is dense."""
    history = training_matrix(histories, similarity.shape[0])
    return np.asarray((history @ similarity).toarray(), dtype=np.float32)

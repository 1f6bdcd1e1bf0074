"""Model vs baselines on one split: full ranking over the catalog, seen movies excluded.

All three methods answer the same cases (per user its last interaction, or its last few, each
from everything before it) on the same catalog; each figure comes with its 95 % interval over the
cases. Cold movies (held out of training) stay candidates for every
method; the cases whose target is one of them are also reported alone, against random.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embeddings.artifacts import LoadedTowers
from embeddings.baselines import (
    cooccurrence_scores,
    item_similarity,
    popularity_scores,
    recent_cap,
    training_matrix,
)
from embeddings.data import Dataset
from embeddings.examples import newest_first
from embeddings.metrics import (
    Ranking,
    expected_hits,
    expected_ndcg,
    interval95,
    random_hit_rate,
    rank_targets,
)
from embeddings.split import EvalCases, Split, Stage, leave_last_out

CHUNK = 512  # cases ranked at once: 512 x 62k catalog x 8 B = 250 MB
UserEmbedder = Callable[[np.ndarray, np.ndarray], np.ndarray]  # [B, L, D], [B, L] -> [B, D]


def user_inputs(
    cases: EvalCases, movie_vectors: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """User-tower inputs of every case: vectors of the last `length` movies that are inputs
    (weight > 0: a dislike is none), newest first."""
    history = np.zeros((len(cases), length, movie_vectors.shape[1]), dtype=np.float32)
    weights = np.zeros((len(cases), length), dtype=np.float32)
    for row, (movies, movie_weights) in enumerate(zip(cases.histories, cases.weights, strict=True)):
        inputs = movie_weights > 0
        indices, weights[row] = newest_first(movies[inputs], movie_weights[inputs], length)
        real = indices >= 0
        history[row, real] = movie_vectors[indices[real]]
    return history, weights


def model_ranking(
    cases: EvalCases,
    movie_vectors: np.ndarray,
    embed_users: UserEmbedder,
    length: int,
    chunk: int = CHUNK,
) -> Ranking:
    """Full ranking of every case over the catalog, `chunk` users at a time."""
    parts = []
    for part in cases.chunks(chunk):
        users = embed_users(*user_inputs(part, movie_vectors, length))
        parts.append(rank_targets(users @ movie_vectors.T, part.targets, part.histories))
    return Ranking.concatenate(parts)


def baseline_rankings(split: Split, cases: EvalCases, chunk: int = CHUNK) -> dict[str, Ranking]:
    """Popularity and co-occurrence on the same cases, `chunk` users at a time."""
    sequences = [m for m, _ in split.train_sequences()]
    train = training_matrix(sequences, len(split.movie_ids))
    cap = recent_cap(np.array([len(m) for m in sequences]))
    recent = (
        train if cap is None else training_matrix([m[-cap:] for m in sequences], train.shape[1])
    )
    similarity = item_similarity(recent)
    del recent
    popular, cooccurring = [], []
    for part in cases.chunks(chunk):
        scores = popularity_scores(train, len(part))
        popular.append(rank_targets(scores, part.targets, part.histories))
        scores = cooccurrence_scores(similarity, part.histories)
        cooccurring.append(rank_targets(scores, part.targets, part.histories))
    return {
        "popularity": Ranking.concatenate(popular),
        "cooccurrence": Ranking.concatenate(cooccurring),
    }


def evaluate(
    split: Split,
    movie_vectors: np.ndarray,
    embed_users: UserEmbedder,
    *,
    length: int,
    k: int = 10,
    stage: Stage = "test",
    max_cold_cases: int = 20_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation JSON: model, popularity, co-occurrence, and the cold-movie cases.

    Memory is bounded by the chunk (a chunk x catalog score matrix), not by the number of users.
    The cold interactions are a seeded sample of `max_cold_cases` when there are more.
    """
    cases = split.cases(stage)
    rankings = {
        "model": model_ranking(cases, movie_vectors, embed_users, length),
        **baseline_rankings(split, cases),
    }
    result: dict[str, Any] = {name: _summary(ranking, k) for name, ranking in rankings.items()}
    liked = ~cases.disliked_targets()
    result["liked_targets"] = {
        name: _summary(ranking.subset(liked), k) for name, ranking in rankings.items()
    }
    cold = split.cold[cases.targets]
    seen = np.array([len(h) for h in cases.histories], dtype=np.int64)
    every = split.cold_cases().sample(max_cold_cases, seed)
    every_seen = np.array([len(h) for h in every.histories], dtype=np.int64)
    result["cold_movies"] = {
        **_summary(rankings["model"].subset(cold), k),
        f"random_hr@{k}": round(random_hit_rate(len(split.movie_ids), seen[cold], k), 6),
        "all_interactions": {
            **_summary(model_ranking(every, movie_vectors, embed_users, length), k),
            f"random_hr@{k}": round(random_hit_rate(len(split.movie_ids), every_seen, k), 6),
        },
    }
    return result


def _summary(ranking: Ranking, k: int) -> dict[str, Any]:
    """HR and NDCG with the half-width of their 95 % normal interval over the cases."""
    return {
        f"hr@{k}": round(ranking.hit_rate(k), 6),
        f"ndcg@{k}": round(ranking.ndcg(k), 6),
        f"hr@{k}_ci95": round(interval95(expected_hits(ranking.above, ranking.tied, k)), 6),
        f"ndcg@{k}_ci95": round(interval95(expected_ndcg(ranking.above, ranking.tied, k)), 6),
        "cases": len(ranking.above),
    }


def evaluate_towers(dataset: Dataset, towers: LoadedTowers) -> dict[str, Any]:
    """Evaluate an exported version on `dataset`, rebuilding the split its manifest describes."""
    from embeddings.movie_inputs import embed_movies

    config = towers.manifest["config"]
    split = leave_last_out(
        dataset,
        min_rating=config["min_rating"],
        cold_fraction=config["cold_fraction"],
        seed=towers.manifest["seed"],
        events=config.get("eval_events", 1),
        dislike_max_rating=config.get("dislike_max_rating"),  # a version from before: none
    )
    vectors = embed_movies(towers.movie_tower, dataset.movies, int(towers.manifest["dim"]))
    return evaluate(
        split,
        vectors,
        towers.embed_users,
        length=towers.manifest["history_length"],
        k=config["top_k"],
        max_cold_cases=config.get("max_eval_cases", 20_000),
        seed=towers.manifest["seed"],
    )

"""Training settings: everything here is part of the model version hash."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from embeddings.weights import DISLIKE_MAX_RATING

UserTowerKind = Literal["pooling", "sequential"]
Negatives = Literal["in_batch", "catalog"]

# The automatic history cache (`TrainConfig.for_catalog`): from this many trained movies, a
# cache refreshed every this many steps.
HISTORY_CACHE_MIN_MOVIES = 20_000
HISTORY_REFRESH_STEPS = 10


@dataclass(frozen=True)
class TrainConfig:
    dim: int = 64
    history_length: int = 50
    # 0 keeps every rating as an interaction: see README of embeddings (threshold decision).
    min_rating: float = 0.0
    cold_fraction: float = 0.05
    batch_size: int = 2048
    epochs: int = 20
    patience: int = 3
    learning_rate: float = 5e-3
    temperature: float = 0.1
    id_dropout: float = 0.5
    word_dim: int = 32
    movie_hidden: int = 256
    user_hidden: int = 128
    # "pooling": attention pooling of the history; "sequential": causal self-attention blocks
    # over it, with learned positions and the rating as an input (embeddings/model.py).
    user_tower: UserTowerKind = "pooling"
    user_blocks: int = 1  # sequential only (2: ~6x the step time, not trained in full)
    user_heads: int = 2  # sequential only
    user_dropout: float = 0.5  # sequential only, in training (0.5 beat 0.2 on validation)
    # Sequential only: the user is today's attention pooling plus the self-attention's learned
    # correction (else the newest slot's stream).
    user_pooling_base: bool = False
    # Sequential only: the last block adds its attention to the newest slot's stream (SASRec's
    # residual); False: the user is the attention alone (it weighs the newest movie as any).
    user_newest_residual: bool = True
    # A rating <= this weighs 0: no input of the user tower (None: every rating is an input).
    dislike_max_rating: float | None = DISLIKE_MAX_RATING
    # Whether a disliked event is still a training target (what the user watched next).
    dislike_targets: bool = True
    # Held-out events per user for validation and for test (1: leave-last-out).
    eval_events: int = 1
    min_word_count: int = 2
    # 0: history vectors through the movie tower with gradients each step; k > 0: from a cache
    # of the catalog's vectors refreshed every k steps (embeddings/model.py, TwoTowerTrainer).
    # None: chosen by `for_catalog` from the number of trained movies.
    history_refresh_steps: int | None = None
    # A batch's target is no negative for a user who has it in their history (never ranked).
    mask_seen: bool = True
    # "in_batch": each user against the batch's targets (sampled negatives, log-q corrected);
    # "catalog": against every trained movie, a full softmax (SASRec+'s cross-entropy; the
    # movie tower runs over the whole catalog each step).
    negatives: Negatives = "in_batch"
    top_k: int = 10
    # Validation (each epoch) and the cold-movie interactions are a seeded sample above this;
    # the test cases are always all users.
    max_eval_cases: int = 20_000

    def for_catalog(self, trained_movies: int) -> TrainConfig:
        """The choices left to the data made: the history cache for a large catalog only.

        Below the threshold a batch's own movies are most of the catalog, a step is cheap, and
        the cache would cost ~8% of validation NDCG on ml-latest-small for little time; at 25M
        ratings it makes a step 2.5x faster (embeddings/README, Limits).
        """
        if self.history_refresh_steps is not None:
            return self
        # Catalog negatives run the tower over the whole catalog anyway: no cache to gain.
        large = trained_movies >= HISTORY_CACHE_MIN_MOVIES and self.negatives == "in_batch"
        return replace(self, history_refresh_steps=HISTORY_REFRESH_STEPS if large else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

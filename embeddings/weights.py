"""How much one event counts in a user's history: the `weights` input of the user tower.

Pure Python on purpose (no TensorFlow import): the service calls it on the request path. The
user tower turns weights into attention (`w * exp(learned score)`, normalized over the history),
so only their ratios inside one history matter. Padding is 0; every real event is > 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

WATCH = 1.0
MIN_WEIGHT = 0.1
MAX_RATING = 5.0
# A rating at or below this is a dislike: the movie pushes recommendations away from it instead
# of towards it (the service's setting `MOVIE_RECS_DISLIKE_MAX_RATING` may move it; training uses
# this default). One place for the rule, shared by training and serving.
DISLIKE_MAX_RATING = 2.0


def event_weight(kind: str, rating: float | None = None) -> float:
    """A plain watch (or any event without a rating) is 1.0, as is a 5-star rating.

    A rating r on MovieLens' 0.5-5 scale weighs r / 5 (floored at 0.1): a disliked movie still
    says something about taste (the user chose to watch it) but less than a loved one. This is the
    mapping the model was trained with, so the service must use it for ratings.
    """
    if kind != "rate" or rating is None:
        return WATCH
    return min(1.0, max(MIN_WEIGHT, float(rating) / MAX_RATING))


def rating_weights(ratings: np.ndarray) -> np.ndarray:
    """`event_weight("rate", r)` of many ratings at once (training reads millions)."""
    import numpy as np

    return np.clip(np.asarray(ratings, np.float64) / MAX_RATING, MIN_WEIGHT, 1.0).astype(np.float32)


def disliked_ratings(ratings: np.ndarray, at: float = DISLIKE_MAX_RATING) -> np.ndarray:
    """Which ratings are dislikes (<= `at`); NaN (no rating) is not."""
    import numpy as np

    values = np.asarray(ratings, np.float64)
    with np.errstate(invalid="ignore"):
        return values <= at

"""The sequential user tower in NumPy against its SavedModel: what the service runs must be what
was trained and evaluated, for any history a request can bring (padded, short, empty, ratings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embeddings import numpy_user_tower

pytestmark = pytest.mark.slow

LENGTH, DIM = 12, 16


def saved_sequential_tower(
    directory: Path, blocks: int, pooling_base: bool = False, newest_residual: bool = True
) -> tuple[Any, dict[str, np.ndarray]]:
    """A sequential tower with random (non-trivial) weights, saved as export saves it; returns
    the loaded signature and the NumPy params as `load_params` reads them."""
    import tensorflow as tf

    from embeddings.export import _user_module, user_tower_params
    from embeddings.model import SequentialUserTower

    tower = SequentialUserTower(
        history_length=LENGTH,
        dim=DIM,
        hidden=24,
        blocks=blocks,
        heads=2,
        dropout=0.2,
        seed=3,
        pooling_base=pooling_base,
        newest_residual=newest_residual,
    )
    tower(np.zeros((1, LENGTH, DIM), np.float32), np.zeros((1, LENGTH), np.float32))
    rng = np.random.default_rng(1)
    for variable in tower.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.3, variable.shape).astype(np.float32))
    module = _user_module(tower, LENGTH, DIM)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    np.savez(directory / "user_tower.npz", **user_tower_params(tower))  # type: ignore[arg-type]
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
    return signature, numpy_user_tower.load_params(directory / "user_tower.npz")


def histories(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Full, short, one-event, empty and rating-mixed histories of unit vectors, zero-padded."""
    vectors = rng.normal(size=(6, LENGTH, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    weights = np.zeros((6, LENGTH), np.float32)
    weights[0] = 1.0
    weights[1, :5] = 1.0
    weights[2, 0] = 1.0
    weights[4] = rng.integers(1, 11, LENGTH) / 10  # 0.5-5 stars
    weights[5, :3] = [0.5, 0.73, 1.0]  # a rating between half stars
    vectors[weights == 0] = 0.0
    return vectors, weights


@pytest.mark.parametrize(
    ("blocks", "pooling_base", "newest_residual"),
    [(1, False, True), (2, False, True), (1, True, True), (2, False, False)],
)
def test_numpy_sequential_tower_equals_the_saved_model(
    tmp_path: Path, blocks: int, pooling_base: bool, newest_residual: bool
) -> None:
    import tensorflow as tf

    signature, params = saved_sequential_tower(tmp_path, blocks, pooling_base, newest_residual)
    history, weights = histories(np.random.default_rng(0))
    saved = signature(history=tf.constant(history), weights=tf.constant(weights))["embedding"]

    ported = numpy_user_tower.forward(params, history, weights)

    assert np.abs(ported - saved.numpy()).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(ported, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(ported[3]).all()  # the empty history: a fixed vector, not NaN


def test_a_history_unpadded_gives_the_padded_vector(tmp_path: Path) -> None:
    """The service passes only the real events (no padding to L): same vector."""
    _, params = saved_sequential_tower(tmp_path, 2)
    history, weights = histories(np.random.default_rng(0))
    padded = numpy_user_tower.forward(params, history[1:2], weights[1:2])
    unpadded = numpy_user_tower.forward(params, history[1:2, :5], weights[1:2, :5])
    assert np.abs(padded - unpadded).max() <= 1e-6


def test_the_rating_and_the_order_are_inputs(tmp_path: Path) -> None:
    """Unlike pooling (where one event's weight cancels out), one movie rated 3 or 5 stars gives
    two users, and the same movies in another order another user."""
    _, params = saved_sequential_tower(tmp_path, 2)
    history, _ = histories(np.random.default_rng(0))
    one = history[:1, :1]
    three, five = (numpy_user_tower.forward(params, one, np.full((1, 1), w)) for w in (0.6, 1.0))
    assert np.abs(three - five).max() > 1e-3
    ordered = numpy_user_tower.forward(params, history[:1, :4], np.ones((1, 4), np.float32))
    swapped = numpy_user_tower.forward(
        params, history[:1, [1, 0, 2, 3]], np.ones((1, 4), np.float32)
    )
    assert np.abs(ordered - swapped).max() > 1e-3


def test_rating_buckets_are_half_stars_and_a_watch_is_five() -> None:
    from embeddings.weights import event_weight

    stars = [0.5, 1.0, 2.5, 3.5, 4.5, 5.0]
    weights = np.array([event_weight("rate", s) for s in stars] + [event_weight("watch"), 0.0])
    assert numpy_user_tower.rating_buckets(weights).tolist() == [1, 2, 5, 7, 9, 10, 10, 0]

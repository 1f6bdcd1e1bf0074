"""FusedAdam trains exactly as Keras' Adam (to float rounding): one fused kernel where that is the
same update, Keras' own update where it is not (a sparse row looked up twice in one step)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("repeated_rows", [False, True])
def test_fused_adam_updates_as_keras_adam(repeated_rows: bool) -> None:
    import keras
    import tensorflow as tf

    from embeddings.optimizer import FusedAdam

    start_table = np.random.default_rng(0).normal(size=(50, 8)).astype("float32")
    start_dense = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    trained = []
    for fused in (False, True):
        table, dense = keras.Variable(start_table), keras.Variable(start_dense)
        unique = [] if repeated_rows else [table]
        optimizer = FusedAdam(5e-3, unique_rows=unique) if fused else keras.optimizers.Adam(5e-3)
        optimizer.build([table, dense])

        @tf.function
        def step(ids: tf.Tensor) -> None:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum((tf.gather(table, ids) @ dense) ** 2)  # noqa: B023
            gradients = tape.gradient(loss, [table, dense])  # noqa: B023
            optimizer.apply(gradients, [table, dense])  # noqa: B023

        for i in range(20):
            draw = np.random.default_rng(i)
            ids = draw.integers(0, 50, 30) if repeated_rows else draw.permutation(50)[:30]
            step(tf.constant(ids))
        trained.append((table.numpy(), dense.numpy()))

    (keras_table, keras_dense), (fused_table, fused_dense) = trained
    assert np.abs(keras_table - start_table).max() > 0.05  # it trained
    np.testing.assert_allclose(fused_table, keras_table, atol=1e-5)
    np.testing.assert_allclose(fused_dense, keras_dense, atol=1e-5)

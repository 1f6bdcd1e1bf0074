"""Adam that moves only the rows of an embedding table a step has gradients for.

Keras's Adam turns a row-sparse gradient (`tf.IndexedSlices`, what a table lookup gives) into a
dense one and updates every row: with the history cache a 25M step's id gradients touch at most
the batch's 2,048 targets of a 59k-row table, and the dense update of that table was most of the
step's optimizer time. Here a sparse gradient updates its rows' moments and values only, as
TensorFlow Addons' LazyAdam did: a row no batch touched keeps its moments and does not drift on
old momentum. Dense gradients get Keras's Adam unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from embeddings.config import TrainConfig


def optimizer_for(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Row-sparse with the history cache (a cached step's id gradients cover only the batch's
    targets, and the dense update of the whole id table was what grew with the catalog);
    Keras' Adam without it, which the bundled model was chosen with (row-sparse there: -1.6%
    mean validation NDCG@10 over three seeds on ml-latest-small, embeddings/README)."""
    if config.history_refresh_steps:
        return RowSparseAdam(config.learning_rate)
    return keras.optimizers.Adam(config.learning_rate)


class RowSparseAdam(keras.optimizers.Adam):  # type: ignore[misc]  # keras is untyped
    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.amsgrad or not isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable, learning_rate)
            return
        # A lookup's gradient repeats a row once per use: sum them, one update per row.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, variable.dtype), position, tf.shape(rows)[0]
        )
        step = tf.cast(self.iterations + 1, variable.dtype)
        alpha = tf.cast(learning_rate, variable.dtype) * tf.sqrt(1 - self.beta_2**step)
        alpha = alpha / (1 - self.beta_1**step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        new_m = self.beta_1 * _rows(m, rows) + (1 - self.beta_1) * values
        new_v = self.beta_2 * _rows(v, rows) + (1 - self.beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(new_m, rows))
        self.assign(v, tf.IndexedSlices(new_v, rows))
        update = alpha * new_m / (tf.sqrt(new_v) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(update, rows))


def _rows(variable: Any, rows: tf.Tensor) -> tf.Tensor:
    """These rows of a variable, read without reading the rest (a resource gather)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return tf.gather(variable, rows)

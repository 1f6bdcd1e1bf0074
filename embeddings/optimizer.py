"""Keras' Adam with an update as one fused TensorFlow kernel wherever that is the same update.

Keras 3's Adam updates a variable with a chain of separate tensor ops (m, v, then the variable,
each a full pass with temporaries). On the movie-id table (a row per trained movie: 59k x 64 at
25M ratings) that chain was ~a quarter of a training step's CPU. `ResourceApplyAdam` computes
the same update (`lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`, m and v as Keras
does) in one pass, for:
- dense gradients (the layers, the user tower);
- the sparse gradients of `unique_rows` variables: tables the trainer looks up once per row a
  step (the movie-id table: the step embeds each distinct movie once), where the densified
  gradient is exactly Keras' update.
Any other sparse gradient keeps Keras' own update: for a row looked up several times in one step
(a word shared by movies), Keras squares each lookup's gradient before summing them into v, the
fused kernel would square the sum, and training would change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):  # type: ignore[misc]  # keras is untyped
    def __init__(self, learning_rate: float, *, unique_rows: Sequence[Any] = ()) -> None:
        super().__init__(learning_rate)
        self.unique_rows = list(unique_rows)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        sparse = isinstance(gradient, tf.IndexedSlices)
        unique = {self._var_key(v) for v in self.unique_rows}
        if self.amsgrad or (sparse and self._var_key(variable) not in unique):
            super().update_step(gradient, variable, learning_rate)
            return
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype),
        )

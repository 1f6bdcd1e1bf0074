import keras
import numpy as np
import tensorflow as tf

from embeddings.config import TrainConfig
from embeddings.optimizer import RowSparseAdam, optimizer_for


def _table(seed: int = 0) -> keras.Variable:
    return keras.Variable(np.random.default_rng(seed).normal(size=(6, 3)).astype("float32"))


def _sparse(rows: list[int], seed: int) -> tf.IndexedSlices:
    values = np.random.default_rng(seed).normal(size=(len(rows), 3)).astype("float32")
    return tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([6, 3]))


def test_rows_every_step_touches_move_as_keras_adam_moves_them() -> None:
    """Repeated rows in one gradient (a movie twice in a batch) add up, as a dense gradient."""
    lazy, dense = _table(), _table()
    lazy_adam, dense_adam = RowSparseAdam(0.1), keras.optimizers.Adam(0.1)
    for step in range(4):
        gradient = _sparse([1, 4, 1], seed=step)
        lazy_adam.apply([gradient], [lazy])
        dense_adam.apply([tf.convert_to_tensor(gradient)], [dense])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(lazy.numpy()[[1, 4]], _table().numpy()[[1, 4]])


def test_a_row_no_longer_touched_stays_where_it_is() -> None:
    """Keras's Adam keeps moving a row on old momentum; the lazy update leaves it alone."""
    lazy, dense = _table(), _table()
    lazy_adam, dense_adam = RowSparseAdam(0.1), keras.optimizers.Adam(0.1)
    for optimizer, table in ((lazy_adam, lazy), (dense_adam, dense)):
        optimizer.apply([_sparse([2], seed=0)], [table])
    after_first = lazy.numpy().copy()
    for optimizer, table in ((lazy_adam, lazy), (dense_adam, dense)):
        optimizer.apply([_sparse([5], seed=1)], [table])
    np.testing.assert_array_equal(lazy.numpy()[[0, 1, 2, 3, 4]], after_first[[0, 1, 2, 3, 4]])
    assert not np.allclose(dense.numpy()[2], after_first[2])  # what the lazy update avoids
    np.testing.assert_allclose(lazy.numpy()[5], dense.numpy()[5], rtol=1e-5)


def test_a_dense_gradient_gets_keras_adam() -> None:
    lazy, dense = _table(), _table()
    gradient = tf.constant(np.random.default_rng(3).normal(size=(6, 3)).astype("float32"))
    RowSparseAdam(0.1).apply([gradient], [lazy])
    keras.optimizers.Adam(0.1).apply([gradient], [dense])
    np.testing.assert_array_equal(lazy.numpy(), dense.numpy())


def test_the_history_cache_trains_row_sparse_and_the_tower_path_with_keras_adam() -> None:
    cached = optimizer_for(TrainConfig(history_refresh_steps=10))
    tower = optimizer_for(TrainConfig(history_refresh_steps=0))
    assert isinstance(cached, RowSparseAdam)
    assert type(tower) is keras.optimizers.Adam
    rates = {float(o.learning_rate.numpy()) for o in (cached, tower)}
    assert rates == {np.float32(TrainConfig().learning_rate)}

"""The two towers (plain Keras 3) and the model that trains them with a softmax over the batch's
targets (sampled negatives) or over the whole trained catalog (`TrainConfig.negatives`).

Movie tower: vector = normalize(content MLP(genres, title words, tag words, year) + id embedding).
The id embedding is dropped at random in training, so the content MLP alone must place a movie
well: that is the vector of a movie added after training (unknown id -> content only).

User towers (`TrainConfig.user_tower`), both over the movie vectors of the last L movies (newest
first) and their weights, no user id: any history (a new user, an anonymous session, movies newer
than the model) has a vector.
- pooling: attention pooling, each movie weighted by `event weight * exp(position score +
  content score)`, then a residual MLP;
- sequential: causal self-attention blocks (SASRec-like, pre-norm) over movie vector + learned
  position + an embedding of the rating bucket read from the weight; the newest position's
  output is the user.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

MASKED_LOGIT = -1e9


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


def _bag_mean(table: layers.Embedding, ids: tf.Tensor) -> tf.Tensor:
    """Mean embedding of the non-zero ids of each row (0: padding or unknown); empty row -> 0.

    Only the non-zero ids are looked up: the padded catalog is ~90% zeros, and embedding the
    whole catalog every step is most of the cost of a training step.
    """
    present = tf.where(ids > 0)
    rows = present[:, 0]
    rows_count = tf.shape(ids, out_type=rows.dtype)[0]
    total = tf.math.unsorted_segment_sum(table(tf.gather_nd(ids, present)), rows, rows_count)
    count = tf.math.unsorted_segment_sum(tf.ones_like(rows, tf.float32), rows, rows_count)
    return total / tf.maximum(count, 1.0)[:, None]


class MovieTower(layers.Layer):
    def __init__(
        self,
        sizes: Mapping[str, int],
        *,
        year_buckets: int,
        dim: int,
        hidden: int,
        word_dim: int,
        id_dropout: float,
        seed: int,
    ) -> None:
        super().__init__(name="movie_tower")
        self.id_dropout = id_dropout
        self.seed_generator = keras.random.SeedGenerator(seed)
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
        self.movie_id = layers.Embedding(sizes["movie_ids"], dim, embeddings_initializer=init)
        self.genres = layers.Embedding(sizes["genres"], word_dim)
        self.title = layers.Embedding(sizes["title_tokens"], word_dim)
        self.tags = layers.Embedding(sizes["tags"], word_dim)
        self.year = layers.Embedding(year_buckets, word_dim // 2)
        self.hidden = layers.Dense(hidden, activation="relu")
        self.project = layers.Dense(dim)

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        ids = features["movie_id"]
        keep = ops.cast(ids > 0, "float32")
        if training and self.id_dropout > 0:
            draw = keras.random.uniform(ops.shape(ids), seed=self.seed_generator)
            keep = keep * ops.cast(draw >= self.id_dropout, "float32")
        return self._vector(self._content(features), ids, keep)

    def with_and_without_ids(
        self, features: Mapping[str, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Each movie's vector and its content-only vector (what an unknown id gets), from one
        pass of the content MLP: the history cache's refresh needs both."""
        content = self._content(features)
        ids = features["movie_id"]
        return self._vector(content, ids, ops.cast(ids > 0, "float32")), l2_normalize(content)

    def _content(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        content = ops.concatenate(
            [
                _bag_mean(self.genres, features["genres"]),
                _bag_mean(self.title, features["title"]),
                _bag_mean(self.tags, features["tags"]),
                self.year(features["year"]),
            ],
            axis=-1,
        )
        return self.project(self.hidden(content))

    def _vector(self, content: tf.Tensor, ids: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        return l2_normalize(content + self.movie_id(ids) * keep[..., None])


class UserTower(layers.Layer):
    """Pure tensor algebra, mirrored by `embeddings.numpy_user_tower.forward`."""

    def __init__(self, *, history_length: int, dim: int, hidden: int) -> None:
        super().__init__(name="user_tower")
        self.position = self.add_weight(
            shape=(history_length,), initializer="zeros", name="position"
        )
        self.query = self.add_weight(shape=(dim,), initializer="zeros", name="query")
        self.hidden = layers.Dense(hidden, activation="relu")
        self.project = layers.Dense(dim, kernel_initializer="zeros")

    def call(self, history: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        mask = ops.cast(weights > 0, "float32")
        logits = self.position + ops.einsum("bld,d->bl", history, self.query)
        logits = logits + ops.log(ops.maximum(weights, 1e-6))
        logits = ops.where(weights > 0, logits, MASKED_LOGIT)
        attention = ops.exp(logits - ops.max(logits, axis=1, keepdims=True)) * mask
        attention = attention / ops.maximum(ops.sum(attention, axis=1, keepdims=True), 1e-9)
        pooled = ops.einsum("bl,bld->bd", attention, history)
        return l2_normalize(pooled + self.project(self.hidden(pooled)))


RATING_BUCKETS = 10  # half stars: weight r / 5 -> bucket 2r in 1..10 (a watch weighs 1: 10)
LAYER_NORM_EPSILON = 1e-6


def rating_buckets(weights: tf.Tensor) -> tf.Tensor:
    """The half-star bucket of each weight (weight = stars / 5; 0 = padding, bucket 0)."""
    bucket = ops.clip(ops.round(weights * RATING_BUCKETS), 1, RATING_BUCKETS)
    return ops.cast(ops.where(weights > 0, bucket, 0), "int32")


def _layer_norm(x: tf.Tensor, scale: tf.Variable, bias: tf.Variable) -> tf.Tensor:
    mean = ops.mean(x, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / ops.sqrt(variance + LAYER_NORM_EPSILON) * scale + bias


def sequential_param_names(blocks: int) -> tuple[str, ...]:
    """The weights of a sequential tower, by name (the NumPy port reads the same names)."""
    per_block = (
        "norm1_scale",
        "norm1_bias",
        "query",
        "key",
        "value",
        "output",
        "output_bias",
        "norm2_scale",
        "norm2_bias",
        "ffn1",
        "ffn1_bias",
        "ffn2",
        "ffn2_bias",
    )
    blockwise = tuple(f"block{b}_{name}" for b in range(blocks) for name in per_block)
    return ("position", "rating", *blockwise, "final_scale", "final_bias", "out", "out_bias")


class SequentialUserTower(layers.Layer):
    """Causal self-attention over the history, mirrored by `embeddings.numpy_user_tower`.

    Input at slot i (newest first): sqrt(D) * movie vector + position_i + rating[bucket_i]. A
    slot attends to itself and older real slots (keys of padding are masked), so with
    newest-first slots the newest one sees the whole history; the last block runs the newest
    slot's query only (the only output used). The user is normalize(x + LayerNorm(x) @ out +
    out_bias) of the newest slot's stream x. An empty history gives a fixed unit vector (every
    key masked), never NaN.
    """

    def __init__(
        self,
        *,
        history_length: int,
        dim: int,
        hidden: int,
        blocks: int,
        heads: int,
        dropout: float,
        seed: int,
        pooling_base: bool = False,
        newest_residual: bool = True,
    ) -> None:
        super().__init__(name="user_tower")
        self.pooling_base, self.newest_residual = pooling_base, newest_residual
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.blocks, self.heads, self.dim = blocks, heads, dim
        self.dropout = layers.Dropout(dropout, seed=seed)
        seeds = iter(range(seed * 1000, seed * 1000 + 1000))  # a distinct draw per matrix

        def glorot() -> keras.initializers.Initializer:
            return keras.initializers.GlorotUniform(next(seeds))

        def small() -> keras.initializers.Initializer:
            return keras.initializers.RandomNormal(stddev=0.02, seed=next(seeds))

        # Value and output start as the identity, the FFN's and the head's last layers as 0:
        # at the start the user is the newest movie plus an attention-weighted mean of the
        # history, today's pooling, and training moves it from there.
        identity = keras.initializers.Identity()
        shapes: dict[str, tuple[tuple[int, ...], keras.initializers.Initializer | str]] = {
            "position": ((history_length, dim), small()),
            "rating": ((RATING_BUCKETS + 1, dim), small()),
        }
        for b in range(blocks):
            shapes[f"block{b}_query"] = ((dim, dim), glorot())
            shapes[f"block{b}_key"] = ((dim, dim), glorot())
            shapes[f"block{b}_value"] = ((dim, dim), identity)
            shapes[f"block{b}_output"] = ((dim, dim), identity)
            shapes[f"block{b}_output_bias"] = ((dim,), "zeros")
            for norm in ("norm1", "norm2"):
                shapes[f"block{b}_{norm}_scale"] = ((dim,), "ones")
                shapes[f"block{b}_{norm}_bias"] = ((dim,), "zeros")
            shapes[f"block{b}_ffn1"] = ((dim, hidden), glorot())
            shapes[f"block{b}_ffn1_bias"] = ((hidden,), "zeros")
            shapes[f"block{b}_ffn2"] = ((hidden, dim), "zeros")
            shapes[f"block{b}_ffn2_bias"] = ((dim,), "zeros")
        shapes["final_scale"] = ((dim,), "ones")
        shapes["final_bias"] = ((dim,), "zeros")
        shapes["out"] = ((dim, dim), "zeros")
        shapes["out_bias"] = ((dim,), "zeros")
        if pooling_base:  # the pooling tower's scores: position, content query (no MLP)
            shapes["pool_position"] = ((history_length,), "zeros")
            shapes["pool_query"] = ((dim,), "zeros")
        self.params = {
            name: self.add_weight(shape=shape, initializer=init, name=name)
            for name, (shape, init) in shapes.items()
        }

    def numpy_params(self) -> dict[str, np.ndarray]:
        flags = {"heads": np.array(self.heads, np.float32)}
        if not self.newest_residual:
            flags["no_newest_residual"] = np.array(1.0, np.float32)
        return {name: np.asarray(v.numpy()) for name, v in self.params.items()} | flags

    def call(self, history: tf.Tensor, weights: tf.Tensor, training: bool = False) -> tf.Tensor:
        p = self.params
        length = ops.shape(history)[1]
        scale = float(np.sqrt(self.dim))  # unit movie vectors to the scale of a normalized slot
        buckets = rating_buckets(weights)
        x = history * scale + p["position"][:length] + ops.take(p["rating"], buckets, axis=0)
        slots = ops.arange(length)
        real = (weights > 0)[:, None]
        for b in range(self.blocks):
            last = b == self.blocks - 1
            # allowed[b, i, j]: slot i attends slot j (j as old as i or older, and real); the
            # last block runs the newest slot's query only.
            causal = slots[None, :] >= (slots[:1] if last else slots)[:, None]
            allowed = ops.logical_and(causal[None], real)
            h = _layer_norm(x, p[f"block{b}_norm1_scale"], p[f"block{b}_norm1_bias"])
            attended = self._attention(h[:, :1] if last else h, h, allowed, b)
            if last and not self.newest_residual:
                x = self.dropout(attended, training=training)  # the attention alone weighs it
            else:
                x = (x[:, :1] if last else x) + self.dropout(attended, training=training)
            h = _layer_norm(x, p[f"block{b}_norm2_scale"], p[f"block{b}_norm2_bias"])
            inner = ops.relu(ops.matmul(h, p[f"block{b}_ffn1"]) + p[f"block{b}_ffn1_bias"])
            ffn = ops.matmul(inner, p[f"block{b}_ffn2"]) + p[f"block{b}_ffn2_bias"]
            x = x + self.dropout(ffn, training=training)
        newest = x[:, 0]
        head = _layer_norm(newest, p["final_scale"], p["final_bias"])
        base = self._pooled(history, weights) if self.pooling_base else newest
        return l2_normalize(base + ops.matmul(head, p["out"]) + p["out_bias"])

    def _pooled(self, history: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Today's attention pooling (`UserTower` without its MLP): with `pooling_base` the
        user starts as it and the self-attention learns a correction of it."""
        p = self.params
        logits = p["pool_position"][: ops.shape(history)[1]]
        logits = logits + ops.einsum("bld,d->bl", history, p["pool_query"])
        logits = ops.where(weights > 0, logits + ops.log(ops.maximum(weights, 1e-6)), MASKED_LOGIT)
        attention = ops.exp(logits - ops.max(logits, axis=1, keepdims=True))
        attention = attention * ops.cast(weights > 0, "float32")
        attention = attention / ops.maximum(ops.sum(attention, axis=1, keepdims=True), 1e-9)
        return ops.einsum("bl,bld->bd", attention, history)

    def _attention(
        self, queries: tf.Tensor, keys: tf.Tensor, allowed: tf.Tensor, block: int
    ) -> tf.Tensor:
        """Multi-head attention of `queries` [B, Q, D] over `keys` [B, L, D]; masked slots get
        exactly 0 (and a query with nothing allowed attends to nothing)."""
        p, heads = self.params, self.heads
        width = self.dim // heads

        def split(x: tf.Tensor, name: str) -> tf.Tensor:
            projected = ops.matmul(x, p[f"block{block}_{name}"])
            shape = ops.shape(projected)
            return ops.transpose(
                ops.reshape(projected, (shape[0], shape[1], heads, width)), (0, 2, 1, 3)
            )

        q, k, v = split(queries, "query"), split(keys, "key"), split(keys, "value")
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / float(np.sqrt(width))
        mask = allowed[:, None]
        logits = ops.where(mask, logits, MASKED_LOGIT)
        attention = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
        attention = attention * ops.cast(mask, "float32")
        attention = attention / ops.maximum(ops.sum(attention, axis=-1, keepdims=True), 1e-9)
        out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
        shape = ops.shape(out)
        merged = ops.reshape(out, (shape[0], shape[1], self.dim))
        return ops.matmul(merged, p[f"block{block}_output"]) + p[f"block{block}_output_bias"]


class TwoTowerTrainer(keras.Model):
    """Trains both towers on (history, weights, target) batches of catalog indices.

    Each step runs the movie tower over the batch's distinct movies only (its histories and its
    targets: at most B x (L + 1), whatever the catalog's size), gathers history and target
    vectors, and scores every user of the batch against every target of the batch: the other
    targets are the sampled negatives, drawn with probability q (the target's share of training
    examples). Logits are corrected by log q, so popular movies are not pushed down just for
    being frequent negatives; a target that appears twice in a batch is not its own negative.

    With `history_refresh_steps` k > 0, history vectors come from a cache of the whole catalog's
    vectors (with and without the id part, so id dropout still applies per history slot),
    recomputed every k steps without gradients, and the tower runs with gradients on the batch's
    targets only (B movies instead of the ~34k distinct ones of a 25M batch): the content MLP
    and id embeddings learn from targets, the user tower from slightly stale history vectors.

    With `negatives="catalog"` the tower runs over the whole catalog each step instead and every
    user is scored against every trained movie (`trained`; all if None): a full softmax, so no
    log q; a movie of the user's history is no negative with `mask_seen`, its target excepted.
    """

    def __init__(
        self,
        movie_tower: MovieTower,
        user_tower: UserTower | SequentialUserTower,
        catalog: Mapping[str, np.ndarray],
        log_q: np.ndarray,
        temperature: float,
        history_refresh_steps: int = 0,
        mask_seen: bool = True,
        negatives: str = "in_batch",
        trained: np.ndarray | None = None,
    ) -> None:
        super().__init__(name="two_tower")
        if negatives not in ("in_batch", "catalog"):
            raise ValueError(f"negatives must be in_batch or catalog, not {negatives!r}")
        if negatives == "catalog" and history_refresh_steps:
            raise ValueError("catalog negatives run the movie tower over the whole catalog")
        self.negatives = negatives
        self.movie_tower = movie_tower
        self.user_tower = user_tower
        self.num_movies = len(log_q)
        # Row num_movies is padding (all features 0): the history index -1 points there.
        self.catalog = {
            name: tf.constant(np.concatenate([value, np.zeros_like(value[:1])]))
            for name, value in catalog.items()
        }
        self.log_q = tf.constant(log_q, dtype=tf.float32)
        self.temperature = temperature
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.history_refresh_steps = history_refresh_steps
        self.mask_seen = mask_seen
        # Catalog negatives: the movies a user is scored against (default: all); the others
        # (cold movies, never a target) get no logit.
        candidates = np.ones(self.num_movies, bool) if trained is None else np.asarray(trained)
        self.not_candidate = tf.constant(~candidates.astype(bool))
        if history_refresh_steps:
            # Row num_movies stays zero (padding: masked by its zero weight in the user tower).
            shape = (self.num_movies + 1, movie_tower.project.units)
            self.cached_full = tf.Variable(tf.zeros(shape), trainable=False, name="cached_full")
            self.cached_content = tf.Variable(
                tf.zeros(shape), trainable=False, name="cached_content"
            )

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def embed(self, indices: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Movie vectors of catalog indices (num_movies: the padding row)."""
        features = {name: ops.take(value, indices, axis=0) for name, value in self.catalog.items()}
        return self.movie_tower(features, training=training)

    def catalog_vectors(self, batch: int = 8192) -> np.ndarray:
        """The whole catalog, in batches (for validation)."""
        parts = [
            self.embed(tf.range(begin, min(begin + batch, self.num_movies))).numpy()
            for begin in range(0, self.num_movies, batch)
        ]
        return np.concatenate(parts)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        """User vectors of a batch of (history indices, weights); index -1 is padding."""
        history, weights = inputs
        targets = ops.zeros((0,), dtype="int32")
        vectors, _ = self._vectors(history, targets, training)
        return self.user_tower(vectors, weights, training=training)

    def _vectors(
        self, history: tf.Tensor, targets: tf.Tensor, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """History vectors [B, L, D] and target vectors [T, D], one tower pass over the union."""
        history = ops.cast(history, "int32")
        flat = ops.reshape(ops.where(history < 0, self.num_movies, history), (-1,))
        unique, position = tf.unique(ops.concatenate([flat, ops.cast(targets, "int32")], axis=0))
        vectors = ops.take(self.embed(unique, training=training), position, axis=0)
        size = ops.shape(flat)[0]
        shape = (ops.shape(history)[0], ops.shape(history)[1], ops.shape(vectors)[1])
        return ops.reshape(vectors[:size], shape), vectors[size:]

    def refresh_history_cache(self) -> None:
        """Every movie's vector with and without its id embedding (no dropout, no gradient)."""
        indices = tf.range(self.num_movies)
        features = {name: ops.take(value, indices, axis=0) for name, value in self.catalog.items()}
        full, content = self.movie_tower.with_and_without_ids(features)
        self.cached_full[: self.num_movies].assign(full)
        self.cached_content[: self.num_movies].assign(content)

    def _cached_histories(self, history: tf.Tensor) -> tf.Tensor:
        """History vectors [B, L, D] from the cache, the id part dropped per slot as in training."""
        history = ops.cast(history, "int32")
        indices = ops.where(history < 0, self.num_movies, history)
        draw = keras.random.uniform(ops.shape(indices), seed=self.movie_tower.seed_generator)
        keep = draw >= self.movie_tower.id_dropout
        full = ops.take(self.cached_full, indices, axis=0)
        content = ops.take(self.cached_content, indices, axis=0)
        return ops.where(keep[..., None], full, content)

    def compute_batch_loss(self, data: tuple[tf.Tensor, ...], training: bool) -> tf.Tensor:
        if self.negatives == "catalog":
            return self._catalog_loss(data, training)
        history, weights, targets = data
        if training and self.history_refresh_steps:
            histories = self._cached_histories(history)
            target_vectors = self.embed(ops.cast(targets, "int32"), training=True)
        else:
            histories, target_vectors = self._vectors(history, targets, training)
        users = self.user_tower(histories, weights, training=training)
        logits = ops.matmul(users, ops.transpose(target_vectors))
        logits = logits / self.temperature - ops.take(self.log_q, targets)[None, :]
        masked = ops.equal(targets[:, None], targets[None, :])
        if self.mask_seen:
            masked = ops.logical_or(masked, self._seen_targets(history, targets))
        diagonal = ops.eye(ops.shape(targets)[0], dtype="bool")
        logits = ops.where(ops.logical_and(masked, ~diagonal), MASKED_LOGIT, logits)
        labels = ops.arange(ops.shape(targets)[0])
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )

    def _catalog_loss(self, data: tuple[tf.Tensor, ...], training: bool) -> tf.Tensor:
        """Full softmax: each user against every candidate movie, no log-q correction (nothing
        is sampled). One movie-tower pass over the whole catalog gives history and candidate
        vectors (one id-dropout draw per movie per step, as the in-batch pass over the union).
        With `mask_seen`, a movie in the user's history is no negative, the target excepted.
        """
        history, weights, targets = data
        history = ops.cast(history, "int32")
        targets = ops.cast(targets, "int32")
        vectors = self.embed(tf.range(self.num_movies + 1), training=training)  # + padding
        indices = ops.where(history < 0, self.num_movies, history)
        users = self.user_tower(ops.take(vectors, indices, axis=0), weights, training=training)
        logits = ops.matmul(users, ops.transpose(vectors[: self.num_movies])) / self.temperature
        masked = ops.broadcast_to(self.not_candidate[None, :], ops.shape(logits))
        if self.mask_seen:
            rows = ops.broadcast_to(ops.arange(ops.shape(history)[0])[:, None], ops.shape(history))
            pairs = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(indices, (-1,))], axis=1)
            shape = [ops.shape(history)[0], self.num_movies + 1]
            counts = tf.scatter_nd(pairs, tf.ones(tf.shape(pairs)[0], tf.int32), shape)
            masked = ops.logical_or(masked, counts[:, : self.num_movies] > 0)
        target = ops.one_hot(targets, self.num_movies, dtype="bool")
        logits = ops.where(ops.logical_and(masked, ~target), MASKED_LOGIT, logits)
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        )

    def _seen_targets(self, history: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """[B, B] bool: target j is in user i's history. Such a movie is no negative for user i:
        serving and evaluation never rank a seen movie, so the loss should not push it down.

        Each history movie is looked up among the batch's distinct targets (a table over the
        catalog), so this costs B x L + B x B, not B x L x B.
        """
        targets = ops.cast(targets, "int32")
        unique, column = tf.unique(targets)
        distinct = tf.shape(unique)[0]
        lookup = tf.scatter_nd(unique[:, None], tf.range(1, distinct + 1), [self.num_movies + 1])
        history = ops.cast(history, "int32")
        found = tf.gather(lookup, ops.where(history < 0, self.num_movies, history)) - 1
        present = tf.where(found >= 0)
        pairs = tf.stack([tf.cast(present[:, 0], tf.int32), tf.gather_nd(found, present)], axis=1)
        counts = tf.scatter_nd(
            pairs, tf.ones(tf.shape(pairs)[0], tf.int32), [tf.shape(history)[0], distinct]
        )
        return ops.take(counts > 0, column, axis=1)

    def train_step(self, data: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
        if self.history_refresh_steps:
            due = ops.equal(self.optimizer.iterations % self.history_refresh_steps, 0)
            tf.cond(due, self.refresh_history_cache, lambda: None)
        with tf.GradientTape() as tape:
            loss = self.compute_batch_loss(data, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

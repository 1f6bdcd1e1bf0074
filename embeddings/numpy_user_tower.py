"""The user towers in plain NumPy (no TensorFlow import): what the service runs on every request.

`params` is the content of `user_tower.npz` in a model version directory: the pooling tower's
weights, or the sequential tower's (recognised by its `heads` entry). `forward` matches the
exported `user_tower` SavedModel within 1e-5 (checked at export, and against the probe at load).
Histories may be shorter than the model's L (the service passes only the real events): padding
is masked in both towers, so the result is the same as padded to L.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

PARAM_NAMES = (
    "position",
    "query",
    "hidden_kernel",
    "hidden_bias",
    "project_kernel",
    "project_bias",
)
MASKED_LOGIT = -1e9
RATING_BUCKETS = 10  # as embeddings.model.RATING_BUCKETS
LAYER_NORM_EPSILON = 1e-6


def load_params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        names = archive.files if "heads" in archive.files else PARAM_NAMES
        return {name: archive[name].astype(np.float32) for name in names}


def is_sequential(params: Mapping[str, np.ndarray]) -> bool:
    return "heads" in params


def forward(
    params: Mapping[str, np.ndarray], history: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """history [B, n, D] movie vectors newest first, weights [B, n] (0 = padding), n <= L
    -> [B, D] unit vectors."""
    history = np.asarray(history, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if is_sequential(params):
        return _sequential(params, history, weights)
    return _pooling(params, history, weights)


def _pooling(
    params: Mapping[str, np.ndarray], history: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    mask = (weights > 0).astype(np.float32)
    logits = params["position"][: history.shape[1]] + history @ params["query"]
    logits = logits + np.log(np.maximum(weights, 1e-6))
    logits = np.where(weights > 0, logits, MASKED_LOGIT).astype(np.float32)
    attention = np.exp(logits - logits.max(axis=1, keepdims=True)) * mask
    attention /= np.maximum(attention.sum(axis=1, keepdims=True), 1e-9)
    pooled = np.einsum("bl,bld->bd", attention, history)
    hidden = np.maximum(pooled @ params["hidden_kernel"] + params["hidden_bias"], 0.0)
    vector = pooled + hidden @ params["project_kernel"] + params["project_bias"]
    return _unit(vector)


def rating_buckets(weights: np.ndarray) -> np.ndarray:
    """Half-star bucket of each weight (weight = stars / 5, a watch 1.0 = 5 stars; 0 = padding)."""
    bucket = np.minimum(np.maximum(np.round(weights * RATING_BUCKETS), 1), RATING_BUCKETS)
    return np.where(weights > 0, bucket, 0).astype(np.intp)


def _sequential(
    params: Mapping[str, np.ndarray], history: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """`embeddings.model.SequentialUserTower.call` at inference (no dropout), one history at a
    time: 2-D products are what the service's one request needs, and cheapest."""
    heads = int(params["heads"])
    blocks = sum(1 for name in params if name.startswith("block") and name.endswith("_query"))
    rows = [
        _sequential_one(params, heads, blocks, h, w) for h, w in zip(history, weights, strict=True)
    ]
    return _unit(np.stack(rows)) if rows else np.zeros((0, history.shape[2]), np.float32)


def _sequential_one(
    p: Mapping[str, np.ndarray], heads: int, blocks: int, history: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    length, dim = history.shape
    scale = np.float32(np.sqrt(dim))
    x = history * scale + p["position"][:length] + p["rating"][rating_buckets(weights)]
    slots = np.arange(length)
    real = weights > 0
    for b in range(blocks):
        last = b == blocks - 1
        allowed = ((slots[:1] if last else slots)[:, None] <= slots[None, :]) & real[None, :]
        h = _layer_norm(x, p[f"block{b}_norm1_scale"], p[f"block{b}_norm1_bias"])
        attended = _attention(p, b, heads, h[:1] if last else h, h, allowed)
        x = attended if last and "no_newest_residual" in p else (x[:1] if last else x) + attended
        h = _layer_norm(x, p[f"block{b}_norm2_scale"], p[f"block{b}_norm2_bias"])
        inner = np.maximum(h @ p[f"block{b}_ffn1"] + p[f"block{b}_ffn1_bias"], 0.0)
        x = x + inner @ p[f"block{b}_ffn2"] + p[f"block{b}_ffn2_bias"]
    newest = x[0]
    head = _layer_norm(newest, p["final_scale"], p["final_bias"])
    base = _pooled(p, history, weights) if "pool_query" in p else newest
    out: np.ndarray = base + head @ p["out"] + p["out_bias"]
    return out


def _pooled(p: Mapping[str, np.ndarray], history: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`SequentialUserTower._pooled`: the pooling tower's attention, without its MLP."""
    logits = p["pool_position"][: len(history)] + history @ p["pool_query"]
    logits = np.where(weights > 0, logits + np.log(np.maximum(weights, 1e-6)), MASKED_LOGIT)
    attention = np.exp(logits - logits.max()) * (weights > 0)
    attention /= np.maximum(attention.sum(), np.float32(1e-9))
    pooled: np.ndarray = attention.astype(np.float32) @ history
    return pooled


def _attention(
    p: Mapping[str, np.ndarray],
    block: int,
    heads: int,
    queries: np.ndarray,
    keys: np.ndarray,
    allowed: np.ndarray,
) -> np.ndarray:
    """Multi-head attention of `queries` [Q, D] over `keys` [n, D], a head at a time."""
    dim = queries.shape[1]
    width = dim // heads
    scale = np.float32(1.0 / np.sqrt(width))
    q = queries @ p[f"block{block}_query"]
    k = keys @ p[f"block{block}_key"]
    v = keys @ p[f"block{block}_value"]
    merged = []
    for head in range(heads):
        part = slice(head * width, (head + 1) * width)
        logits = np.where(allowed, (q[:, part] @ k[:, part].T) * scale, np.float32(MASKED_LOGIT))
        attention = np.exp(logits - logits.max(axis=1, keepdims=True)) * allowed
        attention /= np.maximum(attention.sum(axis=1, keepdims=True), np.float32(1e-9))
        merged.append(attention @ v[:, part])
    out: np.ndarray = np.hstack(merged) @ p[f"block{block}_output"] + p[f"block{block}_output_bias"]
    return out


def _layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    inverse = np.float32(1.0 / x.shape[-1])
    centred = x - x.sum(axis=-1, keepdims=True) * inverse
    variance = (centred * centred).sum(axis=-1, keepdims=True) * inverse
    normed = centred * (1.0 / np.sqrt(variance + np.float32(LAYER_NORM_EPSILON)))
    result: np.ndarray = normed * scale + bias
    return result


def _unit(vector: np.ndarray) -> np.ndarray:
    unit: np.ndarray = vector / np.maximum(np.linalg.norm(vector, axis=-1, keepdims=True), 1e-12)
    return unit.astype(np.float32)

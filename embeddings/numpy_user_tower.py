"""The user tower in plain NumPy (no TensorFlow import), for callers that want no TF session.

`params` is the content of `user_tower.npz` in a model version directory; `forward` matches the
exported `user_tower` SavedModel within 1e-5 (tested).
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


def load_params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name].astype(np.float32) for name in PARAM_NAMES}


def forward(
    params: Mapping[str, np.ndarray], history: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """history [B, L, D] movie vectors newest first, weights [B, L] (0 = padding) -> [B, D]."""
    history = np.asarray(history, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    mask = (weights > 0).astype(np.float32)
    logits = params["position"] + history @ params["query"]
    logits = logits + np.log(np.maximum(weights, 1e-6))
    logits = np.where(weights > 0, logits, MASKED_LOGIT).astype(np.float32)
    attention = np.exp(logits - logits.max(axis=1, keepdims=True)) * mask
    attention /= np.maximum(attention.sum(axis=1, keepdims=True), 1e-9)
    pooled = np.einsum("bl,bld->bd", attention, history)
    hidden = np.maximum(pooled @ params["hidden_kernel"] + params["hidden_bias"], 0.0)
    vector = pooled + hidden @ params["project_kernel"] + params["project_bias"]
    unit: np.ndarray = vector / np.maximum(np.linalg.norm(vector, axis=-1, keepdims=True), 1e-12)
    return unit

"""bench.user_tower on the tiny models: each cell timed, the table and the goal line right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.user_tower import at_length, measure, table
from service.towers import Towers, load_towers

pytestmark = pytest.mark.slow


def test_every_cell_is_timed_and_compared_with_pooling(
    tiny_towers: Towers, tiny_sequential_model_dir: Path
) -> None:
    models = {
        "pooling": tiny_towers,
        "sequential": load_towers(tiny_sequential_model_dir, "latest"),
    }
    figures = measure(models, [50, 200], rounds=1)
    assert set(figures) == {(m, n) for m in models for n in (50, 200)}
    assert all(0 < us < 1e6 for us in figures.values())
    rows = table(figures, [50, 200]).columns[3].cells
    ratios = [float(str(cell).rstrip("x")) for cell in rows]
    assert ratios == pytest.approx(
        [figures["sequential", n] / figures["pooling", n] for n in (50, 200)], rel=0.01
    )


def test_a_longer_history_costs_the_shapes_of_that_length(
    tiny_sequential_model_dir: Path,
) -> None:
    towers = load_towers(tiny_sequential_model_dir, "latest")
    longer = at_length(towers, 200)
    assert longer.user_params["position"].shape == (200, towers.dim)
    history = np.ones((200, towers.dim), np.float32) / np.sqrt(towers.dim)
    vector = longer.embed_user(history, np.ones(200, np.float32))
    assert vector.shape == (towers.dim,) and np.isfinite(vector).all()
    assert towers.user_params["position"].shape[0] == towers.history_length  # not modified

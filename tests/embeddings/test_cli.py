"""`movie-recs train` / `evaluate` as a user runs them: readable output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.support.embeddings import WriteData

runner = CliRunner()


def test_train_with_missing_columns_is_one_red_line_and_exit_2(
    write_data: WriteData, tmp_path: Path
) -> None:
    data = write_data(ratings=[("1", "1", "4")], ratings_header=("userId", "movieId", "rating"))
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "missing columns timestamp" in result.output
    assert "Traceback" not in result.output


def test_train_with_too_little_data_is_exit_2(write_data: WriteData, tmp_path: Path) -> None:
    data = write_data(ratings=[("1", "1", "4", "1")])
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "nothing to evaluate" in result.output


def test_evaluate_without_a_model_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "latest" in result.output


@pytest.mark.slow
def test_evaluate_json_is_one_object_scripts_can_read(tiny_artifacts: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_artifacts.parent), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"model", "popularity", "cooccurrence", "cold_movies", "liked_targets"}
    for method in ("model", "popularity", "cooccurrence"):
        assert 0.0 <= metrics[method]["hr@10"] <= 1.0
        assert metrics[method]["cases"] == 610  # the bundled data, every user
    assert "random_hr@10" in metrics["cold_movies"]
    assert metrics["cold_movies"]["all_interactions"]["cases"] > metrics["cold_movies"]["cases"]

"""The evaluation as a Rich table: what a person reads after `train` or `evaluate`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.table import Table

METHODS = (
    ("model", "two-tower model"),
    ("popularity", "most popular"),
    ("cooccurrence", "item co-occurrence"),
)


def metrics_table(metrics: Mapping[str, Any], k: int = 10) -> Table:
    """Each method's HR and NDCG with their 95 % interval over the cases."""
    table = Table(title="Held-out interactions, ranked among all unseen movies (± 95 % interval)")
    table.add_column("method")
    table.add_column("cases", justify="right")
    table.add_column(f"HR@{k}", justify="right")
    table.add_column(f"NDCG@{k}", justify="right")
    for key, label in METHODS:
        row = metrics[key]
        table.add_row(
            label,
            str(row["cases"]),
            _with_interval(row, f"hr@{k}"),
            _with_interval(row, f"ndcg@{k}"),
        )
    liked = metrics.get("liked_targets")
    if liked:
        row = liked["model"]
        table.add_row(
            "model, targets not disliked",
            str(row["cases"]),
            _with_interval(row, f"hr@{k}"),
            _with_interval(row, f"ndcg@{k}"),
        )
    cold = metrics["cold_movies"]
    every = cold["all_interactions"]
    table.add_section()
    for label, row in (
        ("cold movies, test cases", cold),
        ("cold movies, every interaction", every),
    ):
        cases = str(row["cases"])
        table.add_row(
            f"model, {label}",
            cases,
            _with_interval(row, f"hr@{k}"),
            _with_interval(row, f"ndcg@{k}"),
        )
        table.add_row(f"random, {label}", cases, f"{row[f'random_hr@{k}']:.4f}", "")
    return table


def _with_interval(row: Mapping[str, Any], name: str) -> str:
    """`0.1380 ± 0.0274` (a manifest from before the intervals: the figure alone)."""
    interval = row.get(f"{name}_ci95")
    return f"{row[name]:.4f}" + ("" if interval is None else f" ± {interval:.4f}")


def data_table(report: Mapping[str, int] | Counter[str]) -> Table:
    """What was skipped or noticed while reading and splitting the data."""
    table = Table(title="Data")
    table.add_column("count", justify="right")
    table.add_column("what")
    for name, count in sorted(report.items()):
        if count:
            table.add_row(str(count), name.replace("_", " "))
    return table

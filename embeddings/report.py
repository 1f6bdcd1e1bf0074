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
    table = Table(title="Last interaction per user, ranked among all unseen movies")
    table.add_column("method")
    table.add_column("cases", justify="right")
    table.add_column(f"HR@{k}", justify="right")
    table.add_column(f"NDCG@{k}", justify="right")
    for key, label in METHODS:
        row = metrics[key]
        table.add_row(label, str(row["cases"]), f"{row[f'hr@{k}']:.4f}", f"{row[f'ndcg@{k}']:.4f}")
    cold = metrics["cold_movies"]
    every = cold["all_interactions"]
    table.add_section()
    for label, row in (
        ("cold movies, test cases", cold),
        ("cold movies, every interaction", every),
    ):
        hr, ndcg, cases = f"{row[f'hr@{k}']:.4f}", f"{row[f'ndcg@{k}']:.4f}", str(row["cases"])
        table.add_row(f"model, {label}", cases, hr, ndcg)
        table.add_row(f"random, {label}", cases, f"{row[f'random_hr@{k}']:.4f}", "")
    return table


def data_table(report: Mapping[str, int] | Counter[str]) -> Table:
    """What was skipped or noticed while reading and splitting the data."""
    table = Table(title="Data")
    table.add_column("count", justify="right")
    table.add_column("what")
    for name, count in sorted(report.items()):
        if count:
            table.add_row(str(count), name.replace("_", " "))
    return table

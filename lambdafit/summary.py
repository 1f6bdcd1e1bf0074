"""The few numbers per catalog that the report and the plots both show, from the raw results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.harness.stats import percentile

MIB = 1024 * 1024
PHASES = (
    "interpreter start",
    "import handler",
    "model load",
    "state load",
    "index build",
    "first answer",
)


@dataclass(frozen=True)
class CatalogSummary:
    name: str
    size: int
    synthetic: bool
    index_kind: str
    cold_runs: int
    cold_median: float  # fresh process -> first answer, seconds (lower median if even runs)
    cold_min: float
    cold_max: float
    phases: dict[str, float]  # of the median cold start, seconds
    lambda_p50: float
    lambda_p99: float
    lambda_rss_mb: float
    lambda_rss_reload_mb: float | None
    reload_seconds: float | None
    catch_up_idle: float | None
    catch_up_one: float | None
    container_ready: float | None  # spawn -> /readyz 200, seconds (from a snapshot)
    container_full_sync: float | None  # the same for the first replica (a full sync)
    container_first: float | None  # spawn -> first answer, seconds
    container_p50: float | None
    container_p99: float | None
    container_rss_mb: float | None
    webhook_median: float | None
    webhook_max: float | None


def summarise(entry: dict[str, Any]) -> CatalogSummary:
    runs = entry["lambda"]
    first = runs[0]
    totals = sorted(sum(run["timeline"].values()) for run in runs)
    by_total = sorted(runs, key=lambda run: sum(run["timeline"].values()))
    middle = by_total[(len(runs) - 1) // 2]  # its phases add up to the median total
    phases = {p: middle["timeline"].get(p, 0.0) for p in PHASES}
    box = entry.get("container")
    return CatalogSummary(
        name=entry["catalog"]["name"],
        size=int(first["movies"]),
        synthetic=bool(entry["catalog"]["synthetic"]),
        index_kind=first["index_kind"],
        cold_runs=len(runs),
        cold_median=sum(middle["timeline"].values()),  # a run of any phase list adds up
        cold_min=min(totals),
        cold_max=max(totals),
        phases=phases,
        lambda_p50=percentile(first["warm_seconds"], 50),
        lambda_p99=percentile(first["warm_seconds"], 99),
        lambda_rss_mb=max(run["peak_rss_mb"] for run in runs),
        lambda_rss_reload_mb=first.get("peak_rss_mb_with_reload"),
        reload_seconds=first.get("reload_seconds"),
        catch_up_idle=first.get("catch_up_idle_seconds"),
        catch_up_one=first.get("catch_up_one_movie_seconds"),
        container_ready=box["ready_seconds"] if box else None,
        container_full_sync=box.get("full_sync_ready_seconds") if box else None,
        container_first=box["first_answer_seconds"] if box else None,
        container_p50=percentile(box["warm_seconds"], 50) if box else None,
        container_p99=percentile(box["warm_seconds"], 99) if box else None,
        container_rss_mb=box["peak_rss_mb"] if box else None,
        webhook_median=statistics.median(box["webhook_seconds"])
        if box and box["webhook_seconds"]
        else None,
        webhook_max=max(box["webhook_seconds"]) if box and box["webhook_seconds"] else None,
    )


def summaries(results: dict[str, Any]) -> list[CatalogSummary]:
    """Catalogs by size (MovieLens among them), smallest first."""
    return sorted((summarise(e) for e in results["catalogs"]), key=lambda s: s.size)


def short(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return f"{size:,}"


def label(s: CatalogSummary) -> str:
    return f"{short(s.size)} synthetic" if s.synthetic else f"MovieLens ({s.size:,})"

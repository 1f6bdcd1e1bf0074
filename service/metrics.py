"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "movie_recs_request_seconds",
            "Request latency by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gc_pause_seconds = Histogram(
            "movie_recs_gc_pause_seconds",
            "Garbage collections by generation (2: full). Each holds the GIL: the event loop "
            "answers nothing meanwhile, so long ones are the request tail",
            ["generation"],
            buckets=GC_BUCKETS,
            registry=r,
        )
        self.index_size = Gauge("movie_recs_index_size", "Live movies in the index", registry=r)
        self.index_version = Gauge(
            "movie_recs_index_version", "Last change-log sequence applied", registry=r
        )
        self.replica_lag = Gauge(
            "movie_recs_replica_lag", "Change-log head minus last applied sequence", registry=r
        )
        self.model = Info("movie_recs_model", "The model version this replica serves", registry=r)
        self.freshness_seconds = Histogram(
            "movie_recs_change_applied_seconds",
            "Webhook accepted -> applied in this replica's index",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.resyncs = Counter(
            "movie_recs_resyncs", "Full resyncs from the store", ["reason"], registry=r
        )
        self.refresher_errors = Counter(
            "movie_recs_refresher_errors", "Failed refresher steps (retried)", registry=r
        )
        self.compactions = Counter("movie_recs_compactions", "Index compactions", registry=r)
        self.shed = Counter(
            "movie_recs_shed_requests",
            "Requests refused with 503 because the in-flight limit was reached",
            registry=r,
        )
        self.key_requests = Counter(
            "movie_recs_key_requests", "Requests admitted, by API key name", ["key"], registry=r
        )
        self.key_refusals = Counter(
            "movie_recs_key_refusals",
            "Requests refused for a known key: 'scope' (403) or 'rate' (429)",
            ["key", "reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            "movie_recs_auth_failures",
            "Requests without a key ('missing') or with an unknown one ('invalid'): 401",
            ["reason"],
            registry=r,
        )
        self.store_unavailable = Counter(
            "movie_recs_store_unavailable",
            "Requests answered 503 because the store failed or missed its deadline",
            registry=r,
        )
        self.store_up = Gauge(
            "movie_recs_store_up", "1 when the refresher's last store call succeeded", registry=r
        )
        self.store_memory_bytes = Gauge(
            "movie_recs_store_memory_bytes",
            "Memory the store uses (Store.memory_bytes): the catalog's Redis (SQLite: the file) "
            "and, when activity has a Redis or cluster of its own, the activity's",
            ["part"],
            registry=r,
        )
        self.resyncs_refused = Counter(
            "movie_recs_resyncs_refused",
            "Resyncs refused because the store's catalog was empty or shrunken (kept the index)",
            registry=r,
        )
        self.catalog_lost = Gauge(
            "movie_recs_catalog_lost",
            "1 while the store's catalog is empty or shrunken and the last good index serves",
            registry=r,
        )
        self.snapshot_loads = Counter(
            "movie_recs_snapshot_loads",
            "Startups by where the index came from: a snapshot (loaded), or a full sync because "
            "there was none, or it was foreign (model, epoch), stale (log trimmed) or corrupt",
            ["outcome"],
            registry=r,
        )
        self.snapshots_published = Counter(
            "movie_recs_snapshots_published",
            "Index snapshots written to the shared directory",
            ["outcome"],
            registry=r,
        )
        self.model_swaps = Counter(
            "movie_recs_model_swaps",
            "Promoted model versions this replica swapped to ('swapped') or could not ('failed': "
            "fetch, load, check or index; it keeps serving the old one and retries)",
            ["outcome"],
            registry=r,
        )
        self.model_checked = Gauge(
            "movie_recs_model_checked",
            "1 once the NumPy towers reproduced the export's probe (at startup: else no start)",
            registry=r,
        )
        self.model_check_failed = Gauge(
            "movie_recs_model_check_failed",
            "Stays 0, kept for existing alarms: a version whose NumPy towers fail the export's "
            "probe is refused at load (no start; a swap counts in movie_recs_model_swaps)",
            registry=r,
        )
        self.exposures = Counter(
            "movie_recs_exposures",
            "Recommendation lists shown, by what became of their record: 'recorded' in the store, "
            "'dropped' (the in-memory queue was full) or 'failed' (the store refused the batch)",
            ["outcome"],
            registry=r,
        )
        self.exposure_queue = Gauge(
            "movie_recs_exposure_queue", "Exposures waiting to be written", registry=r
        )
        self.attributed = Counter(
            "movie_recs_attributed_events",
            "Events attributed to a recommendation list, by experiment and variant (empty "
            "outside one) and how: 'explicit' (recommendation_id) or 'implicit' (the window)",
            ["experiment", "variant", "how"],
            registry=r,
        )

    def watch_gc(self) -> Callable[[], None]:
        """Time every garbage collection into `gc_pause_seconds` (~1 µs a collection); returns
        the function that stops it (an app's lifespan ends, another may start in-process)."""
        started = [0.0]
        observe = [self.gc_pause_seconds.labels(str(g)).observe for g in range(3)]

        def timed(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                observe[info["generation"]](time.perf_counter() - started[0])

        gc.callbacks.append(timed)
        return lambda: gc.callbacks.remove(timed)

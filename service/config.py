"""One `Settings` object, read from `MOVIE_RECS_*` environment variables (or a `.env` file).

Built once at the entry point and passed down, so tests can build apps with overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from embeddings.data import BUNDLED_DATA
from embeddings.weights import DISLIKE_MAX_RATING

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOVIE_RECS_", env_file=".env", extra="ignore", frozen=True
    )

    store_url: str = Field(
        default="sqlite:///var/movie-recs.db",
        description="redis://host:port/db, or sqlite:///relative.db / sqlite:////absolute.db",
    )
    store_password: SecretStr | None = Field(
        default=None, description="Redis AUTH token, kept out of the URL (an ECS secret on AWS)."
    )
    artifacts_dir: Path = Path("artifacts")
    model_version: str = Field(
        default="latest",
        description="Directory under artifacts_dir: the model served until the store names "
        "another (`movie-recs models promote`), and the fallback when that cannot load.",
    )
    registry_url: str = Field(
        default="var/registry",
        description="Where model versions are published and read: a directory (the compose "
        "demo's shared volume) or s3://bucket/prefix.",
    )
    model_cache_dir: Path = Field(
        default=Path("var/models"),
        description="Where a replica keeps the versions it fetched from an S3 registry.",
    )
    gate_tolerance: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="`retrain` promotes a candidate whose NDCG@10 is at least the serving "
        "model's minus this, on the same split.",
    )
    model_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="How often a replica checks which model version the store says to serve.",
    )
    data_dir: Path = BUNDLED_DATA

    activity_max_events: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Events kept per user, newest first: what the user tower reads (its "
        "newest history_length) and what `retrain` learns from (1,000 keep 93.5% of "
        "ml-latest-small's ratings, 200 kept 59% and trained a model the gate refused).",
    )
    activity_url: str | None = Field(
        default=None,
        description="A Redis of its own for user activity (histories), with its own eviction "
        "policy, so activity can never fill the catalog's memory. Unset: the store_url's Redis. "
        "Only with a Redis store_url.",
    )
    activity_cluster: bool = Field(
        default=False,
        description="activity_url is a Redis Cluster (ElastiCache cluster mode): each user's keys "
        "share one hash slot.",
    )
    history_ttl_days: float = Field(
        default=180,
        gt=0,
        le=3650,
        description="A user's history expires this long after its last write (refreshed on "
        "every write).",
    )
    changelog_max_len: int = Field(
        default=100_000, ge=100, description="Change-log entries kept; older readers resync."
    )

    store_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Deadline of each store call on the request path; past it: 503.",
    )
    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Requests in progress at once (health checks aside); past it: 503 at once.",
    )
    read_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="A request's headers, then its body, must arrive within this each: else the "
        "connection closes (headers) or the answer is 408 (body).",
    )
    resync_min_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A resync smaller than this share of the live index is refused (the store "
        "lost its data): the last good index keeps serving.",
    )

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_max_movies: int = Field(default=1000, ge=1)
    webhook_dedupe_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=72 * 3600)

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated 'name:scope+scope:secret' (scopes: read, events, users, "
        "admin); see SECURITY.md.",
    )
    auth_disabled: bool = Field(
        default=False,
        description="Serve /v1 without API keys (the local demo only). Without it, `serve` "
        "refuses to start when no key is configured.",
    )
    key_rate_per_second: float = Field(
        default=100.0, gt=0, description="Requests per second each API key may make, per replica."
    )
    key_burst: int = Field(default=200, ge=1, description="Requests a key may make at once.")
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    ann_threshold: int = Field(default=20_000, ge=1, description="Above this size: IVF.")
    ivf_nprobe: int = Field(
        default=32,
        ge=1,
        description="IVF cells searched per query at least (raised to recall 0.99).",
    )
    compact_at: int = Field(default=2000, ge=1, description="Delta + tombstones that compact.")
    freshness_wait_seconds: float = Field(
        default=2.0, ge=0, le=30, description="How long min_index_version may wait."
    )
    work_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Deadline of work that runs in a worker thread (filtered and title "
        "searches); past it: 503.",
    )
    work_threads: int = Field(
        default=2, ge=1, le=64, description="Worker threads such work may use at once."
    )
    max_waiting: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description="Requests waiting for min_index_version at once; they do not count toward "
        "max_in_flight. Past it: 503 at once.",
    )
    snapshot_dir: Path | None = Field(
        default=None,
        description="A directory replicas share (a volume, EFS): a replica that full-synced or "
        "compacted writes its index there, and a new one starts from it. Unset: off.",
    )
    snapshot_keep: int = Field(default=3, ge=1, le=100, description="Snapshots kept per kind.")
    # --- exposures, attribution and experiments (issue 25) -----------------------------------
    attribution_window_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 30,
        description="An event for a movie shown to the user within this long before it is "
        "attributed to the latest such list; exposures are kept this long.",
    )
    exposure_log_max_len: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Exposures the store's log keeps at most (newest; none older than the "
        "attribution window).",
    )
    exposures_per_subject: int = Field(
        default=50, ge=1, le=1000, description="Newest exposures kept per user or session."
    )
    exposure_queue_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Exposures waiting in memory to be written; past it new ones are dropped "
        'and counted (movie_recs_exposures{outcome="dropped"}).',
    )
    exposure_flush_seconds: float = Field(
        default=0.1, gt=0, le=10, description="How often waiting exposures are written."
    )
    experiment_poll_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often a replica reads the experiments."
    )
    experiment_max_days: float = Field(
        default=90,
        gt=0,
        le=365,
        description="An experiment stops assigning this long after it starts.",
    )
    experiment_retention_days: float = Field(
        default=30,
        gt=0,
        le=365,
        description="An experiment and its counts are kept this long after it ends.",
    )
    experiment_min_users: int = Field(
        default=1000,
        ge=1,
        description="Users every variant needs before a report gives a verdict.",
    )
    # --- taste (issue 26) ---------------------------------------------------------------------
    dislike_max_rating: float = Field(
        default=DISLIKE_MAX_RATING,
        ge=0,
        le=5,
        description="A rating at or below this (of 5) is a dislike: not read by the user tower, "
        "it pushes its neighbours down (0: only `dislike` events are). The model was trained "
        f"with {DISLIKE_MAX_RATING:g}.",
    )
    page: bool = Field(
        default=False, description="Serve the demo page at / (on under `movie-recs demo`)."
    )
    omp_threads: int = Field(default=1, ge=1)
    tf_threads: int = Field(default=1, ge=1)

    @field_validator("api_keys", "webhook_secrets", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        """Env vars hold several keys comma-separated, so keys can rotate without downtime."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

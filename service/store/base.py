"""The store interface alone: catalog, activity, change log, dedupe and embedding cache.

Two implementations (Redis, SQLite) pass one contract suite (`tests/service/store/`); the
records they hold are in `records.py`, what they raise in `errors.py`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence

import numpy as np

from service.store.history import History
from service.store.records import (
    UNCHECKED,
    ChangeEntry,
    Event,
    Experiment,
    Exposure,
    ExposureLimits,
    Movie,
    MovieChange,
    Promotion,
    Unchecked,
    WriteResult,
)


class Store(abc.ABC):
    """Async interface shared by both backends; see the contract tests for its promises."""

    activity_max_events: int
    history_ttl_seconds: float  # a history expires this long after its last write

    # --- catalog and change log -------------------------------------------------------------
    @abc.abstractmethod
    async def apply_changes(
        self,
        changes: Sequence[MovieChange],
        *,
        dedupe_key: str | None = None,
        dedupe_digest: str = "",
        dedupe_ttl_seconds: int = 7 * 24 * 3600,
    ) -> WriteResult:
        """Claim `dedupe_key`, write the movies and append their change entries, all or nothing.

        The claim keeps `dedupe_digest` (of the delivery's body): the same key with another
        digest writes nothing and reports `conflict` (a key claimed without a digest matches any).

        An upsert identical to the stored live movie, or a delete of a missing or deleted
        movie, is not a change: it gets no version bump and no entry.
        """

    @abc.abstractmethod
    async def get_movies(self, ids: Sequence[str]) -> dict[str, Movie]:
        """Movies by id, deleted ones included (flagged); unknown ids are absent."""

    @abc.abstractmethod
    def iter_movies(self, batch_size: int = 1000) -> AsyncIterator[list[Movie]]:
        """Every live movie, in batches."""

    @abc.abstractmethod
    async def count_movies(self) -> int:
        """Live (not deleted) movies."""

    @abc.abstractmethod
    async def read_changes(
        self, after: int, limit: int = 1000, block_seconds: float = 0.0
    ) -> list[ChangeEntry]:
        """Entries with seq > `after`, oldest first; wait up to `block_seconds` if none."""

    @abc.abstractmethod
    async def head_seq(self) -> int:
        """The last sequence handed out (0 when nothing was ever written)."""

    @abc.abstractmethod
    async def first_retained_seq(self) -> int:
        """The oldest entry still kept; head + 1 when the log holds nothing."""

    @abc.abstractmethod
    async def trim_changes(self, keep_last: int) -> None:
        """Drop all but the newest `keep_last` entries."""

    @abc.abstractmethod
    async def epoch(self) -> str:
        """Changes whenever the store is emptied or recreated, so readers can detect a gap."""

    # --- activity ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_events(self, user_id: str, events: Sequence[Event]) -> None:
        """Record events, keeping only the `activity_max_events` newest by timestamp; the
        history then expires `history_ttl_seconds` from now (every write starts it again)."""

    async def add_events_bulk(self, events: Mapping[str, Sequence[Event]]) -> None:
        """`add_events` for many users at once (an import): backends write it in one round trip
        and one transaction (on a Redis Cluster: one a hash slot); this default is one call per
        user."""
        for user_id, user_events in events.items():
            await self.add_events(user_id, user_events)

    @abc.abstractmethod
    async def recent_history(self, user_id: str, limit: int | None = None) -> History:
        """The newest `limit` (default: all retained) events, newest first, as columns: one
        read of one packed record (the recommendation path)."""

    async def recent_events(self, user_id: str, limit: int | None = None) -> list[Event]:
        """Newest first, as `Event`s (for showing a history)."""
        return (await self.recent_history(user_id, limit)).events()

    @abc.abstractmethod
    async def erase_user(self, user_id: str) -> None:
        """Remove everything kept about the user (their history); a user without any is fine."""

    @abc.abstractmethod
    async def count_users(self) -> int: ...

    @abc.abstractmethod
    async def sample_users(self, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` users that have activity, with how many events each keeps."""

    @abc.abstractmethod
    async def count_events(self) -> int: ...

    @abc.abstractmethod
    def iter_histories(self, batch_size: int = 500) -> AsyncIterator[list[tuple[str, History]]]:
        """Every user with an unexpired history, with all of it (newest first), in batches of
        about `batch_size` users: for training, off the request path. Each batch is read
        under its own deadline, so it is no snapshot: a user written meanwhile may show the
        write or not. On Redis the users come from SCAN, which may list a user twice if the
        keyspace is resized during the walk; a caller that counts keeps the first."""

    # --- embedding cache --------------------------------------------------------------------
    @abc.abstractmethod
    async def get_embeddings(
        self, model_version: str, versions: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        """Cached vectors whose movie version matches `versions[id]`; stale ones are misses."""

    @abc.abstractmethod
    async def put_embeddings(
        self, model_version: str, vectors: Mapping[str, tuple[int, np.ndarray]]
    ) -> None:
        """Store (movie version, vector) per movie id for one model version."""

    # --- the serving model -------------------------------------------------------------------
    @abc.abstractmethod
    async def serving_model(self) -> str | None:
        """The model version every replica should serve; None until one was promoted."""

    @abc.abstractmethod
    async def promote_model(
        self, version: str, note: str = "", *, replacing: str | Unchecked | None = UNCHECKED
    ) -> Promotion:
        """Point every replica at `version`, atomically with its line in the history. With
        `replacing`, only if the pointer still names that version (None: names none), else
        PromotionRaced and nothing changes: a retrain's gate, or a rollback, was decided
        against the model the pointer named when it looked."""

    @abc.abstractmethod
    async def model_history(self, limit: int = 20) -> list[Promotion]:
        """The latest promotions, newest first (the first is the serving one)."""

    # --- exposures, attribution and experiments ------------------------------------------
    @abc.abstractmethod
    async def add_exposures(self, exposures: Sequence[Exposure], limits: ExposureLimits) -> None:
        """Record a batch (all or none are checked first): each in the exposure log, which
        keeps the newest `limits.log_max_len` younger than `limits.ttl_seconds`; each with a
        subject in that subject's list, which keeps its newest `limits.per_subject` and expires
        `limits.ttl_seconds` after the last; and each in an experiment as one more exposure
        of its (variant, subject), kept until the experiment's `expires_at`."""

    @abc.abstractmethod
    async def subject_exposures(self, subject: str) -> list[Exposure]:
        """The subject's unexpired exposures, newest first (at most `per_subject`)."""

    @abc.abstractmethod
    async def exposure_log(self, limit: int = 100) -> list[Exposure]:
        """The newest `limit` exposures of the log, newest first."""

    @abc.abstractmethod
    async def count_exposure_log(self) -> int:
        """Exposures the log holds now."""

    @abc.abstractmethod
    async def claim_attribution(
        self, exposure: Exposure, movie_id: str, ttl_seconds: float
    ) -> bool:
        """True the first time an event for `movie_id` is attributed to `exposure` (its
        subject's claim, kept `ttl_seconds`), and then one more attributed event of the
        exposure's (variant, subject) in its experiment; False for a repeat."""

    @abc.abstractmethod
    async def create_experiment(self, experiment: Experiment) -> None:
        """Store a new experiment; ExperimentConflict when its name is taken or another one
        is active. Experiments past their `expires_at` are dropped with their counts."""

    @abc.abstractmethod
    async def stop_experiment(self, name: str, at: float) -> Experiment:
        """Mark it stopped at `at` (a stopped one stays as it was); UnknownExperiment."""

    @abc.abstractmethod
    async def experiments(self) -> list[Experiment]:
        """Every experiment kept, oldest first."""

    @abc.abstractmethod
    async def experiment_counts(self, name: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(variant, subject) -> (exposures, attributed events) of one experiment; off the
        request path (a scan of its counts)."""

    # --- lifecycle --------------------------------------------------------------------------
    @abc.abstractmethod
    async def upgrade(self) -> None:
        """Convert data written in an older format (histories of formats 1 and 2) once;
        `open_store` runs it, so a new release reads what an old one wrote."""

    @abc.abstractmethod
    async def memory_bytes(self) -> dict[str, int]:
        """What the store's servers use, by part: "catalog" (the store_url's Redis: INFO
        used_memory; SQLite: the file), and "activity" when activity has a Redis of its own
        (summed over a cluster's primaries). For a gauge, off the request path."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the backend cannot be reached."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Empty everything; the epoch changes."""

    @abc.abstractmethod
    async def close(self) -> None: ...

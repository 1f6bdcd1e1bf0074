"""Keeping this replica's index equal to the store's catalog.

`full_sync` builds a live index from the whole catalog (startup, and after any gap). The
`Refresher` owns the published live index and where it stands in the change log: `step` applies
one batch of entries, `catch_up` steps until the live index reaches the log's head (startup), and
`run` is the loop around `step` that blocks on the log, compacts, logs, backs off and never
dies silently. Requests read it through `IndexView`. With a `SnapshotDir`, it starts from the
newest usable snapshot instead of a full sync, and writes one after every full sync and
compaction (in a thread, never delaying the index it publishes).

Fail static: when the store fails, the last good index keeps serving and readiness holds
(the store is shared, so dropping readiness would drain every replica at once); a resync that
would shrink the index to (next to) nothing is refused, because the store lost its data, not
the catalog its movies.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.index import titles
from service.index.background import Background
from service.index.live import BaseIndex, IndexParams, LiveIndex, MovieMeta
from service.index.snapshot_file import Identity, SnapshotDir, SnapshotUnusable
from service.index.vectors import catalog_vectors, vectors_for
from service.index.view import Serving
from service.metrics import Metrics
from service.model_source import ModelSource
from service.store import ChangeEntry, Movie, Store, StoreError
from service.towers import ModelLoadError, Towers

log = logging.getLogger(__name__)

SYNC_BATCH = 5000
STORE_BACKOFF_CAP = 2.0  # seconds between attempts while the store is down: recover quickly
EPOCH_CHANGED = "epoch changed"
TRIMMED = "change log trimmed past cursor"
MODEL_RETRY_CAP = 300.0  # seconds between attempts at a version that failed to load


@dataclass(frozen=True, eq=False)
class Prepared:
    """A promoted model's index, built beside the served one, not yet caught up."""

    live: LiveIndex
    towers: Towers
    epoch: str
    started: float


def freeze_long_lived() -> None:
    """A new base (a resync, a model swap, a compaction) lives until the next one: collect the
    young generations (cheap), then move what survives out of the collector's reach, so full
    collections never walk the served index (startup does the same once the index is in).
    Not a full `gc.collect()`: at 1M movies that is the pause this avoids (ADR 34)."""
    gc.collect(1)
    gc.freeze()


class CatalogLost(Exception):
    """The store's catalog is empty or much smaller than the index: keep the index, retry."""


def meta_of(movie: Movie) -> MovieMeta:
    return MovieMeta(movie.title, movie.genres, movie.year, movie.version)


async def full_sync(store: Store, towers: Towers, params: IndexParams) -> tuple[LiveIndex, str]:
    """A live index of the whole catalog, and the epoch it belongs to.

    The head is read before the scan: anything written during the scan has a later sequence
    and is applied again by tailing, which is idempotent.
    """
    epoch = await store.epoch()
    head = await store.head_seq()
    movies: dict[str, Movie] = {}
    async for batch in store.iter_movies(SYNC_BATCH):
        movies.update((m.id, m) for m in batch)
    items = list(movies.values())
    parts = [
        await vectors_for(store, towers, items[i : i + SYNC_BATCH])
        for i in range(0, len(items), SYNC_BATCH)
    ]
    vectors = np.concatenate(parts) if parts else np.zeros((0, towers.dim), np.float32)
    ids = [m.id for m in items]
    metas = [meta_of(m) for m in items]
    base = await asyncio.to_thread(BaseIndex.build, ids, vectors, metas, params)
    return LiveIndex.create(base, head), epoch


class Refresher:
    """The one owner of this replica's published index (an `IndexView` for request code)."""

    def __init__(
        self,
        store: Store,
        towers: Towers,
        params: IndexParams,
        metrics: Metrics,
        *,
        compact_at: int = 2000,
        min_fraction: float = 0.5,
        snapshots: SnapshotDir | None = None,
        models: ModelSource | None = None,
        model_poll_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.towers = towers  # the served model: changes only with the index (`_publish`)
        self.params = params
        self.metrics = metrics
        self.compact_at = compact_at
        self.min_fraction = min_fraction  # a resync smaller than this share of the index is refused
        self.snapshots = snapshots
        self.started_from: str | None = None  # "snapshot <file>" or "full sync", once started
        self._sharing: asyncio.Task[None] | None = None  # a snapshot being written
        self._serving: Serving | None = None
        self.models = models  # where promoted versions come from; None: never swap
        self.model_poll_seconds = model_poll_seconds
        self._next_model_look = 0.0
        self._preparing: asyncio.Task[Prepared] | None = None  # a promoted version being built
        self._model_error: str | None = None
        self._failed: tuple[str, float, float] | None = None  # version, retry at, backoff
        self._changed = asyncio.Event()
        self._epoch = ""
        self._caught_up = False
        self._head = 0
        self._generation = 0  # bumped by every full sync, so a stale compaction is dropped
        self._store_error: str | None = None  # the last store failure, None once it recovers
        self._catalog_lost: str | None = None  # why the last resync was refused, None after one
        self._background = Background()  # the long FAISS calls of swaps and compactions

    # The read-only view (IndexView).
    @property
    def serving(self) -> Serving | None:
        return self._serving

    @property
    def live(self) -> LiveIndex | None:
        return self._serving.live if self._serving is not None else None

    @property
    def model_error(self) -> str | None:
        return self._model_error

    @property
    def index_version(self) -> int:
        return self._serving.live.index_version if self._serving else 0

    @property
    def head(self) -> int:
        return self._head

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    @property
    def store_error(self) -> str | None:
        return self._store_error

    @property
    def catalog_lost(self) -> str | None:
        return self._catalog_lost

    async def wait_for(self, seq: int, within: float) -> bool:
        deadline = asyncio.get_running_loop().time() + within
        while self.index_version < seq:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.index_version >= seq
        return True

    # Writing.
    def _publish(self, live: LiveIndex, towers: Towers | None = None) -> None:
        """The one place the served index (and, on a swap, the model with it) changes."""
        if towers is not None:
            self.towers = towers
        self._serving = Serving(live, self.towers)
        self._changed.set()
        self._changed = asyncio.Event()

    def adopt(self, live: LiveIndex, epoch: str, *, caught_up: bool = False) -> None:
        """Replace the index with a full sync's live index (a new lineage for compaction)."""
        self._epoch = epoch
        self._generation += 1
        self._publish(live)
        if caught_up:
            self._caught_up = True

    def _check_size(self, found: int, reason: str) -> None:
        """Raise CatalogLost when `found` live movies would replace a much larger index."""
        current = len(self.live) if self.live is not None else 0
        if current == 0 or (found > 0 and found >= self.min_fraction * current):
            return
        self._catalog_lost = (
            f"the store holds {found} movies against {current} indexed ({reason}); "
            "serving the last good index until the catalog is back"
        )
        self.metrics.resyncs_refused.inc()
        self.metrics.catalog_lost.set(1)
        raise CatalogLost(self._catalog_lost)

    async def resync(self, reason: str) -> None:
        """Replace the index with a full sync, unless the store's catalog looks lost.

        A gap (this replica fell behind the retained log) drops readiness until the new index
        is in; a changed epoch (the store restarted or failed over: every replica at once) does
        not, as the old index goes on serving meanwhile. The size floor guards only resyncs where
        the store may have lost data (a new epoch, a log behind the cursor); a log trimmed past
        the cursor is the same store moved forward, so its deletes went through the log and a
        much smaller catalog is the truth.
        """
        if reason != EPOCH_CHANGED:
            self._caught_up = False
        started = time.perf_counter()
        guarded = reason != TRIMMED
        if guarded:
            self._check_size(await self.store.count_movies(), reason)
        live, epoch = await full_sync(self.store, self.towers, self.params)
        if guarded:
            self._check_size(len(live), reason)
        self._catalog_lost = None
        self.metrics.catalog_lost.set(0)
        self.adopt(live, epoch)
        freeze_long_lived()
        self._share(live.base, live.index_version)
        self.metrics.resyncs.labels(reason).inc()
        # Every replica loads this way at startup (INFO); any later resync means drift was caught.
        log.log(
            logging.INFO if reason == "startup" else logging.WARNING,
            "full resync (%s): %d movies at sequence %d in %.2fs",
            reason,
            len(live),
            live.index_version,
            time.perf_counter() - started,
        )

    async def start(self) -> None:
        """The first index: the newest usable snapshot, else a full sync (logged, counted)."""
        if self.snapshots is not None:
            try:
                await self._load_snapshot(self.snapshots)
                return
            except SnapshotUnusable as exc:
                self.metrics.snapshot_loads.labels(exc.outcome).inc()
                log.log(
                    logging.INFO if exc.outcome == "none" else logging.WARNING,
                    "not starting from a snapshot (%s: %s); full sync instead",
                    exc.outcome,
                    exc,
                )
        await self.resync("startup")
        self.started_from = "full sync"

    async def _load_snapshot(self, snapshots: SnapshotDir) -> None:
        started = time.perf_counter()
        epoch = await self.store.epoch()
        loaded = await asyncio.to_thread(snapshots.load, self._identity(epoch))
        # The log must still hold every entry after the snapshot, and not be behind it.
        first, head = await self.store.first_retained_seq(), await self.store.head_seq()
        if first > loaded.index_version + 1 or head < loaded.index_version:
            raise SnapshotUnusable(
                "stale",
                f"{loaded.path.name} is at sequence {loaded.index_version}, the log holds "
                f"{first}..{head}",
            )
        if loaded.titles is not None:
            titles.remember(loaded.base, loaded.titles)
        self.adopt(LiveIndex.create(loaded.base, loaded.index_version), epoch)
        self.metrics.snapshot_loads.labels("loaded").inc()
        self.started_from = f"snapshot {loaded.path.name}"
        log.info(
            "started from snapshot %s: %d movies at sequence %d, %.1f MB in %.2fs",
            loaded.path.name,
            len(loaded.base),
            loaded.index_version,
            loaded.bytes_read / 2**20,
            time.perf_counter() - started,
        )

    def _identity(self, epoch: str) -> Identity:
        return Identity(self.towers.version, epoch, self.params)

    def _share(self, base: BaseIndex, index_version: int) -> None:
        """Write a snapshot in the background, unless one is being written or a newer exists."""
        snapshots = self.snapshots
        if snapshots is None or (self._sharing is not None and not self._sharing.done()):
            return
        identity = self._identity(self._epoch)

        async def write() -> None:
            try:
                if await asyncio.to_thread(snapshots.newest_seq, identity) >= index_version:
                    return  # another replica already wrote this state or a later one
                # The same build search uses (cached per base), so it is never built twice.
                title_index = await titles.title_index(base)
                await asyncio.to_thread(
                    snapshots.publish, base, index_version, identity, title_index
                )
                self.metrics.snapshots_published.labels("ok").inc()
            except Exception:
                self.metrics.snapshots_published.labels("failed").inc()
                log.exception("could not write a snapshot to %s", snapshots.directory)

        self._sharing = asyncio.create_task(write(), name="snapshot")

    async def step(self, *, limit: int = 1000, block_seconds: float = 0.0) -> int:
        """Apply the next batch of changes (or resync on a gap); return how many entries applied."""
        store, metrics = self.store, self.metrics
        if self.live is None:
            await self.start()
        live = self.live
        assert live is not None
        if await store.epoch() != self._epoch:
            await self.resync(EPOCH_CHANGED)
            return 0
        entries = await store.read_changes(live.index_version, limit, block_seconds)
        gap = None
        if entries and entries[0].seq != live.index_version + 1:
            gap = TRIMMED
        elif not entries and (head := await store.head_seq()) < live.index_version:
            gap = "change log behind cursor"
        if gap is not None:
            # The store may have restarted empty while this step was reading: say so if it did.
            reason = EPOCH_CHANGED if await store.epoch() != self._epoch else gap
            await self.resync(reason)
            return 0
        if not entries:
            self._head = head
            self._caught_up = head == live.index_version
            metrics.replica_lag.set(head - live.index_version)
            return 0

        self._publish(await self._apply(live, self.towers, entries))

        now = time.time()
        for entry in entries:
            metrics.freshness_seconds.observe(max(0.0, now - entry.accepted_at))
        head = await store.head_seq()
        self._head = max(head, entries[-1].seq)
        self._caught_up = self._head == entries[-1].seq
        metrics.replica_lag.set(self._head - entries[-1].seq)
        return len(entries)

    async def _apply(
        self, live: LiveIndex, towers: Towers, entries: Sequence[ChangeEntry]
    ) -> LiveIndex:
        """`live` with `entries` applied, new movies embedded by `towers`' movie tower."""
        latest = {e.movie_id: e for e in entries}  # the last entry per movie wins
        current = await self.store.get_movies(list(latest))
        present = [m for m in current.values() if not m.deleted]
        deletes = [mid for mid in latest if mid not in current or current[mid].deleted]
        vectors = await vectors_for(self.store, towers, present)
        upserts = [(m.id, vectors[i], meta_of(m)) for i, m in enumerate(present)]
        return live.with_changes(upserts, deletes, entries[-1].seq)

    # Following the promoted model.
    async def follow_model(self) -> None:
        """Between steps: look (every `model_poll_seconds`) at which version the store says to
        serve; build the index for a new one in the background (the served index's movies,
        each vector from the store's cache or the new movie tower, in a worker thread); once
        built, catch it up with the log from where the served index stood and
        swap model and index together. A version that
        cannot be fetched, loaded, checked or indexed leaves the served one in place, is
        reported (`model_error`) and retried with backoff."""
        if self.models is None:
            return
        preparing = self._preparing
        if preparing is not None and preparing.done():
            self._preparing = None
            await self._finish_swap(preparing)
            return
        now = asyncio.get_running_loop().time()
        if preparing is not None or now < self._next_model_look:
            return
        self._next_model_look = now + self.model_poll_seconds
        wanted = await self.store.serving_model()
        if wanted is None or wanted == self.towers.version:
            self._model_error = None
            self._failed = None
            return
        if self._failed is not None and self._failed[0] == wanted and now < self._failed[1]:
            return
        log.info("model %s promoted: building its index beside %s", wanted, self.towers.version)
        self._preparing = asyncio.create_task(self._prepare(wanted), name=f"model-{wanted}")

    async def _prepare(self, version: str) -> Prepared:
        assert self.models is not None
        started = time.perf_counter()
        towers = await asyncio.to_thread(self.models.load, version)  # checked by its probe
        served, epoch = self.live, self._epoch
        if served is None:
            raise StoreError("no index is served yet")
        ids, metas = await asyncio.to_thread(served.live_catalog)
        vectors, found = await catalog_vectors(self.store, towers, ids, metas.versions)
        params, heavy, base = self.params, self._background.run, served.base

        def build() -> BaseIndex:
            if found.all():
                return BaseIndex.build(ids, vectors, metas, params, heavy=heavy, rows_of=base)
            rows = np.flatnonzero(found)
            kept = [ids[r] for r in rows.tolist()]
            return BaseIndex.build(kept, vectors[rows], metas.take(rows), params, heavy=heavy)

        live = LiveIndex.create(await asyncio.to_thread(build), served.index_version)
        return Prepared(live, towers, epoch, started)

    async def _finish_swap(self, preparing: asyncio.Task[Prepared]) -> None:
        try:
            prepared = preparing.result()
        except (ModelLoadError, StoreError, OSError) as exc:
            self._swap_failed(preparing.get_name().removeprefix("model-"), str(exc))
            return
        except Exception as exc:
            log.exception("building the index of a promoted model failed")
            self._swap_failed(preparing.get_name().removeprefix("model-"), repr(exc))
            return
        towers, live = prepared.towers, prepared.live
        if prepared.epoch != self._epoch or await self.store.serving_model() != towers.version:
            self._next_model_look = 0.0  # the store moved on meanwhile: look again at once
            return
        built_at = live.index_version
        # Catch the new index up with the log, at least to where the served one is, so
        # min_index_version never goes back across a swap; no step runs meanwhile.
        while True:
            entries = await self.store.read_changes(live.index_version, 1000)
            if entries and entries[0].seq != live.index_version + 1:
                self._next_model_look = 0.0  # the log was trimmed past it: build again
                return
            if not entries:
                break
            live = await self._apply(live, towers, entries)
        if live.index_version < self.index_version:
            self._next_model_look = 0.0
            return
        previous = self.towers.version
        self._generation += 1  # a compaction of the old model's index is dropped
        self._publish(live, towers)
        freeze_long_lived()
        self._model_error = None
        self._failed = None
        self.metrics.model.info({"version": towers.version})
        self.metrics.model_swaps.labels("swapped").inc()
        self._share(live.base, built_at)
        log.info(
            "now serving model %s (was %s): %d movies at sequence %d, built in %.1fs",
            towers.version,
            previous,
            len(live),
            live.index_version,
            time.perf_counter() - prepared.started,
        )

    def _swap_failed(self, version: str, why: str) -> None:
        now = asyncio.get_running_loop().time()
        backoff = 2 * self._failed[2] if self._failed and self._failed[0] == version else 5.0
        backoff = min(backoff, MODEL_RETRY_CAP)
        self._failed = (version, now + backoff, backoff)
        self._model_error = (
            f"cannot serve model {version}: {why}; still serving {self.towers.version}"
        )
        self.metrics.model_swaps.labels("failed").inc()
        log.error("%s; retrying in %.0fs", self._model_error, backoff)

    async def catch_up(self, *, limit: int = 1000) -> None:
        """Step until the live index includes the whole change log (startup); errors propagate."""
        while await self.step(limit=limit) > 0 or not self._caught_up:
            pass

    async def compact(self) -> None:
        """Fold delta and tombstones into a new base, built off the event loop, swapped in once."""
        started = self.live
        generation = self._generation
        if started is None:
            return
        params = self.params

        heavy = self._background.run

        def build() -> BaseIndex:
            return BaseIndex.build(*started.live_items(), params, started.base, heavy=heavy)

        base = await asyncio.to_thread(build)  # all of it off the event loop
        current = self.live
        if self._generation != generation or current is None:
            return  # a full resync replaced the lineage this base was built from
        self._publish(current.rebased(base, started))
        freeze_long_lived()
        self._share(base, started.index_version)
        self.metrics.compactions.inc()
        log.info("compacted the index: %d movies, %d pending after", len(base), current.pending)

    async def run(self, *, block_seconds: float = 1.0) -> None:
        """Tail the change log until cancelled. Errors are logged, counted and retried with backoff.

        Every store call has its own deadline, so a frozen or vanished store surfaces here as a
        StoreError within seconds; the loop keeps trying and picks up where it was once it answers.
        """
        metrics = self.metrics
        backoff = 0.1
        compaction: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    await self.step(block_seconds=block_seconds)
                    await self.follow_model()
                    backoff = 0.1
                    if self._store_error is not None:
                        log.warning("store answers again; refresher resumed")
                    self._store_error = None
                    metrics.store_up.set(1)
                except asyncio.CancelledError:
                    raise
                except (StoreError, CatalogLost) as exc:
                    # Readiness holds: the index in memory is still the last good one.
                    metrics.refresher_errors.inc()
                    if isinstance(exc, StoreError):
                        self._store_error = str(exc)
                        metrics.store_up.set(0)
                    log.error("refresher: %s; retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, STORE_BACKOFF_CAP)
                except Exception:
                    self._caught_up = False
                    metrics.refresher_errors.inc()
                    log.exception("refresher step failed; retrying in %.1fs", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                if compaction is not None and compaction.done():
                    if not compaction.cancelled() and compaction.exception() is not None:
                        log.error("compaction failed", exc_info=compaction.exception())
                    compaction = None
                live = self.live
                if compaction is None and live is not None and live.pending >= self.compact_at:
                    compaction = asyncio.create_task(self.compact())
        finally:
            if self._preparing is not None:
                self._preparing.cancel()
            if compaction is not None:
                compaction.cancel()
            if self._sharing is not None:
                self._sharing.cancel()  # the thread finishes its file; the rename is atomic
            self._background.close()

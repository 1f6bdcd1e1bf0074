"""SQLite backend: the embedded default. One file, WAL mode, safe for several processes.

All calls run on one dedicated thread per store (sqlite3 connections are not thread-safe and
must not block the event loop); writes take `BEGIN IMMEDIATE` so concurrent processes queue on
the file lock instead of failing half-way.

A history row keeps its write time: reads take a row older than `history_ttl_seconds` for no
history at all, and each activity write deletes a bounded number of expired rows (through an
index on the write time) in the same transaction. So a store that is written keeps draining what
expired at a bounded cost per write, and no open pays for a purge of unknown size.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from service.store import history
from service.store.base import Store
from service.store.encoding import (
    events_from_keys,
    pack_dedupe,
    pack_vector,
    unpack_dedupe,
    unpack_vector,
)
from service.store.errors import ExperimentConflict, PromotionRaced, StoreError, UnknownExperiment
from service.store.history import History
from service.store.records import (
    UNCHECKED,
    ChangeEntry,
    Delete,
    Event,
    Experiment,
    Exposure,
    ExposureLimits,
    Movie,
    MovieChange,
    Promotion,
    Unchecked,
    Upsert,
    WriteResult,
    admit_experiment,
    validate_changes,
    validate_events,
    validate_experiment,
    validate_exposures,
    validate_user_id,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS movies (
    id TEXT PRIMARY KEY, content TEXT NOT NULL,
    version INTEGER NOT NULL, deleted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, movie_id TEXT NOT NULL, op TEXT NOT NULL,
    version INTEGER NOT NULL, accepted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    user_id TEXT PRIMARY KEY, events INTEGER NOT NULL, record BLOB NOT NULL,
    written REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, result TEXT NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS promotions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL, at REAL NOT NULL,
    note TEXT NOT NULL, previous TEXT
);
CREATE TABLE IF NOT EXISTS exposure_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exposure_log_at ON exposure_log (at);
CREATE TABLE IF NOT EXISTS subject_exposures (
    subject TEXT NOT NULL, seq INTEGER NOT NULL, expires REAL NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (subject, seq)
);
CREATE INDEX IF NOT EXISTS subject_exposures_expires ON subject_exposures (expires);
CREATE TABLE IF NOT EXISTS attributions (
    subject TEXT NOT NULL, claim TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (subject, claim)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attributions_expires ON attributions (expires);
CREATE TABLE IF NOT EXISTS experiments (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiment_counts (
    experiment TEXT NOT NULL, variant TEXT NOT NULL, subject TEXT NOT NULL,
    exposures INTEGER NOT NULL DEFAULT 0, attributed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment, variant, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS embeddings (
    model_version TEXT NOT NULL, movie_id TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (model_version, movie_id)
) WITHOUT ROWID;
"""

_POLL_SECONDS = 0.05
# Expired history rows a write deletes: a constant, plus two per user it writes, so deletes
# outpace what expires as long as writes go on.
_PURGE_ROWS = 100


def sqlite_path(url: str) -> Path:
    """`sqlite:///var/x.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    path = url.removeprefix("sqlite:///")
    if not path:
        raise StoreError(f"store URL {url!r} names no file; use sqlite:///path/to/file.db")
    return Path(path)


class SQLiteStore(Store):
    def __init__(
        self,
        url: str,
        *,
        activity_max_events: int,
        changelog_max_len: int,
        history_ttl_seconds: float,
    ) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.activity_max_events = activity_max_events
        self.changelog_max_len = changelog_max_len
        self.history_ttl_seconds = history_ttl_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    # --- plumbing ---------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from None
        self._conn = conn
        self._ensure_epoch(conn)
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        """Switching to WAL needs a moment alone with the file; SQLite does not wait for it."""
        deadline = time.monotonic() + 30
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @staticmethod
    def _ensure_epoch(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (uuid.uuid4().hex,)
        )

    def _connection(self) -> sqlite3.Connection:
        return self._conn or self._open()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                return fn(self._connection())
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # --- catalog and change log -------------------------------------------------------------
    async def apply_changes(
        self,
        changes: Sequence[MovieChange],
        *,
        dedupe_key: str | None = None,
        dedupe_digest: str = "",
        dedupe_ttl_seconds: int = 7 * 24 * 3600,
    ) -> WriteResult:
        validate_changes(changes)
        now = time.time()

        def body(conn: sqlite3.Connection) -> WriteResult:
            if dedupe_key is not None:
                conn.execute("DELETE FROM dedupe WHERE key = ? AND expires < ?", (dedupe_key, now))
                row = conn.execute(
                    "SELECT result FROM dedupe WHERE key = ?", (dedupe_key,)
                ).fetchone()
                if row:
                    first, last, digest = unpack_dedupe(row[0])
                    conflict = bool(digest and dedupe_digest and digest != dedupe_digest)
                    return WriteResult(
                        duplicate=True, first_seq=first, last_seq=last, conflict=conflict
                    )
            seqs: list[int] = []
            versions: dict[str, int] = {}
            for change in changes:
                movie_id = change.movie.id if isinstance(change, Upsert) else change.movie_id
                cur = conn.execute(
                    "SELECT content, version, deleted FROM movies WHERE id = ?", (movie_id,)
                ).fetchone()
                version = cur[1] if cur else 0
                if isinstance(change, Upsert):
                    content = change.movie.content_json()
                    if cur and not cur[2] and cur[0] == content:
                        continue
                    op, deleted = "upsert", 0
                else:
                    assert isinstance(change, Delete)
                    if not cur or cur[2]:
                        continue
                    op, deleted, content = "delete", 1, cur[0]
                conn.execute(
                    "INSERT INTO movies (id, content, version, deleted) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET content = excluded.content, "
                    "version = excluded.version, deleted = excluded.deleted",
                    (movie_id, content, version + 1, deleted),
                )
                cursor = conn.execute(
                    "INSERT INTO changes (movie_id, op, version, accepted_at) VALUES (?, ?, ?, ?)",
                    (movie_id, op, version + 1, now),
                )
                seqs.append(int(cursor.lastrowid or 0))
                versions[movie_id] = version + 1
            if seqs:
                conn.execute(
                    "DELETE FROM changes WHERE seq <= ?", (seqs[-1] - self.changelog_max_len,)
                )
            if dedupe_key is not None:
                claim = pack_dedupe(
                    seqs[0] if seqs else None, seqs[-1] if seqs else None, dedupe_digest
                )
                conn.execute(
                    "INSERT INTO dedupe (key, result, expires) VALUES (?, ?, ?)",
                    (dedupe_key, claim, now + dedupe_ttl_seconds),
                )
            return WriteResult(
                duplicate=False,
                first_seq=seqs[0] if seqs else None,
                last_seq=seqs[-1] if seqs else None,
                versions=versions,
            )

        return await self._run(lambda conn: self._transaction(conn, lambda: body(conn)))

    async def get_movies(self, ids: Sequence[str]) -> dict[str, Movie]:
        def query(conn: sqlite3.Connection) -> dict[str, Movie]:
            found: dict[str, Movie] = {}
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for mid, content, version, deleted in conn.execute(
                    f"SELECT id, content, version, deleted FROM movies WHERE id IN ({marks})",
                    chunk,
                ):
                    found[mid] = Movie.from_content(mid, content, version, bool(deleted))
            return found

        return await self._run(query)

    async def iter_movies(self, batch_size: int = 1000) -> AsyncIterator[list[Movie]]:
        last = ""
        while True:

            def page(conn: sqlite3.Connection, after: str = last) -> list[Movie]:
                rows = conn.execute(
                    "SELECT id, content, version FROM movies WHERE deleted = 0 AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (after, batch_size),
                ).fetchall()
                return [Movie.from_content(r[0], r[1], r[2], False) for r in rows]

            batch = await self._run(page)
            if not batch:
                return
            yield batch
            last = batch[-1].id

    async def count_movies(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM movies WHERE deleted = 0")

    async def read_changes(
        self, after: int, limit: int = 1000, block_seconds: float = 0.0
    ) -> list[ChangeEntry]:
        def query(conn: sqlite3.Connection) -> list[ChangeEntry]:
            rows = conn.execute(
                "SELECT seq, movie_id, op, version, accepted_at FROM changes "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            return [ChangeEntry(*row) for row in rows]

        deadline = time.monotonic() + block_seconds
        while True:
            entries = await self._run(query)
            if entries or time.monotonic() >= deadline:
                return entries
            await asyncio.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    async def head_seq(self) -> int:
        return await self._scalar("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")

    async def first_retained_seq(self) -> int:
        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT MIN(seq) FROM changes").fetchone()
            if row and row[0] is not None:
                return int(row[0])
            head = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
            value = head.fetchone()
            return (int(value[0]) if value else 0) + 1

        return await self._run(query)

    async def trim_changes(self, keep_last: int) -> None:
        def trim(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM changes WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM changes) - ?",
                (keep_last,),
            )

        await self._run(trim)

    async def epoch(self) -> str:
        def query(conn: sqlite3.Connection) -> str:
            self._ensure_epoch(conn)
            return str(conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

        return await self._run(query)

    # --- activity ---------------------------------------------------------------------------
    def _cutoff(self) -> float:
        """Rows written before this have expired."""
        return time.time() - self.history_ttl_seconds

    async def add_events(self, user_id: str, events: Sequence[Event]) -> None:
        await self.add_events_bulk({user_id: events})

    async def add_events_bulk(self, events: Mapping[str, Sequence[Event]]) -> None:
        """Every user's merge (read, merge, write back) in one transaction."""
        for user_id, user_events in events.items():
            validate_events(user_id, user_events)
        new = {u: [history.entry(e) for e in es] for u, es in events.items() if es}
        if new:
            await self._run(lambda conn: self._transaction(conn, lambda: self._merge(conn, new)))

    def _merge(self, conn: sqlite3.Connection, new: Mapping[str, Sequence[bytes]]) -> None:
        """Merge into each user's history (an expired one counts as none), written now; then
        delete a bounded number of expired rows."""
        now = time.time()
        cutoff = now - self.history_ttl_seconds
        rows = []
        for user_id, entries in new.items():
            found = conn.execute(
                "SELECT record FROM history WHERE user_id = ? AND written >= ?", (user_id, cutoff)
            ).fetchone()
            record = history.merge(found[0] if found else None, entries, self.activity_max_events)
            rows.append((user_id, history.count(record), record, now))
        conn.executemany(
            "INSERT INTO history (user_id, events, record, written) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET events = excluded.events, "
            "record = excluded.record, written = excluded.written",
            rows,
        )
        conn.execute(
            "DELETE FROM history WHERE rowid IN "
            "(SELECT rowid FROM history WHERE written < ? LIMIT ?)",
            (cutoff, _PURGE_ROWS + 2 * len(rows)),
        )

    async def recent_history(self, user_id: str, limit: int | None = None) -> History:
        def query(conn: sqlite3.Connection) -> History:
            found = conn.execute(
                "SELECT record FROM history WHERE user_id = ? AND written >= ?",
                (user_id, self._cutoff()),
            ).fetchone()
            return history.decode(found[0] if found else None, limit)

        return await self._run(query)

    async def erase_user(self, user_id: str) -> None:
        validate_user_id(user_id)

        def erase(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM history WHERE user_id = ?", (user_id,))
            for table in ("subject_exposures", "attributions", "experiment_counts"):
                conn.execute(f"DELETE FROM {table} WHERE subject = ?", (user_id,))

        await self._run(lambda conn: self._transaction(conn, lambda: erase(conn)))

    async def upgrade(self) -> None:
        """Once: give histories of a store from before the TTL their write time (now) and an
        index on it; convert a format-1 `activity` table (one row per event) to records and drop
        it. Each in one transaction; a current store pays two lookups."""

        def missing(conn: sqlite3.Connection) -> tuple[bool, bool]:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
            old_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'activity'"
            ).fetchone()
            return "written" not in columns, bool(old_table)

        def add_write_times(conn: sqlite3.Connection) -> None:
            if missing(conn)[0]:  # else another process added them meanwhile
                conn.execute("ALTER TABLE history ADD COLUMN written REAL NOT NULL DEFAULT 0")
                conn.execute("UPDATE history SET written = ?", (time.time(),))

        def convert(conn: sqlite3.Connection) -> None:
            if not missing(conn)[1]:  # another process converted it meanwhile
                return
            grouped: dict[str, list[bytes]] = {}
            for user_id, payload in conn.execute("SELECT user_id, payload FROM activity"):
                grouped.setdefault(user_id, []).extend(
                    history.entry(e) for e in events_from_keys([payload])
                )
            self._merge(conn, grouped)
            conn.execute("DROP TABLE activity")

        no_write_times, old_table = await self._run(missing)
        if no_write_times:
            await self._run(lambda conn: self._transaction(conn, lambda: add_write_times(conn)))
        await self._run(
            lambda conn: conn.execute(
                "CREATE INDEX IF NOT EXISTS history_written ON history (written)"
            )
        )
        if old_table:
            await self._run(lambda conn: self._transaction(conn, lambda: convert(conn)))

    async def count_users(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM history WHERE written >= ?")

    async def sample_users(self, limit: int) -> list[tuple[str, int]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = conn.execute(
                "SELECT user_id, events FROM history WHERE written >= ? LIMIT ?",
                (self._cutoff(), limit),
            ).fetchall()
            return [(str(user), int(count)) for user, count in rows]

        return await self._run(query)

    async def count_events(self) -> int:
        return await self._scalar("SELECT COALESCE(SUM(events), 0) FROM history WHERE written >= ?")

    async def iter_histories(
        self, batch_size: int = 500
    ) -> AsyncIterator[list[tuple[str, History]]]:
        """Pages in user id order through the primary key, each page one query."""
        last = ""  # every id is non-empty
        while True:

            def page(conn: sqlite3.Connection, after: str = last) -> list[tuple[str, bytes]]:
                rows = conn.execute(
                    "SELECT user_id, record FROM history WHERE written >= ? AND user_id > ? "
                    "ORDER BY user_id LIMIT ?",
                    (self._cutoff(), after, batch_size),
                ).fetchall()
                return [(str(user), bytes(record)) for user, record in rows]

            rows = await self._run(page)
            if not rows:
                return
            yield [(user, history.decode(record)) for user, record in rows]
            last = rows[-1][0]

    # --- exposures, attribution and experiments ------------------------------------------
    async def add_exposures(self, exposures: Sequence[Exposure], limits: ExposureLimits) -> None:
        """One transaction: the rows, then the trims (the log by age and length, the batch's
        subjects to their newest, a bounded number of expired subject rows and claims)."""
        validate_exposures(exposures)
        if not exposures:
            return

        def write(conn: sqlite3.Connection) -> None:
            now = time.time()
            cutoff = now - limits.ttl_seconds
            subjects: set[str] = set()
            for exposure in exposures:
                record = exposure.to_json()
                seq = conn.execute(
                    "INSERT INTO exposure_log (at, record) VALUES (?, ?)", (exposure.at, record)
                ).lastrowid
                if exposure.subject is not None:
                    subjects.add(exposure.subject)
                    conn.execute(
                        "INSERT INTO subject_exposures (subject, seq, expires, record) "
                        "VALUES (?, ?, ?, ?)",
                        (exposure.subject, seq, now + limits.ttl_seconds, record),
                    )
                    if exposure.experiment and exposure.variant:
                        conn.execute(
                            "INSERT INTO experiment_counts (experiment, variant, subject, "
                            "exposures) VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET "
                            "exposures = exposures + 1",
                            (exposure.experiment, exposure.variant, exposure.subject),
                        )
            conn.execute(
                "DELETE FROM exposure_log WHERE at < ? OR seq <= "
                "(SELECT MAX(seq) FROM exposure_log) - ?",
                (cutoff, limits.log_max_len),
            )
            for subject in subjects:
                conn.execute(
                    "DELETE FROM subject_exposures WHERE subject = ? AND seq <= COALESCE(("
                    "SELECT seq FROM subject_exposures WHERE subject = ? "
                    "ORDER BY seq DESC LIMIT 1 OFFSET ?), -1)",
                    (subject, subject, limits.per_subject),
                )
                # a subject's list expires as a whole, `ttl` after its last write (as on Redis)
                conn.execute(
                    "UPDATE subject_exposures SET expires = ? WHERE subject = ?",
                    (now + limits.ttl_seconds, subject),
                )
            purge = _PURGE_ROWS + 2 * len(exposures)
            conn.execute(
                "DELETE FROM subject_exposures WHERE rowid IN (SELECT rowid FROM "
                "subject_exposures WHERE expires < ? LIMIT ?)",
                (now, purge),
            )
            conn.execute(
                "DELETE FROM attributions WHERE (subject, claim) IN (SELECT subject, claim "
                "FROM attributions WHERE expires < ? LIMIT ?)",
                (now, purge),
            )

        await self._run(lambda conn: self._transaction(conn, lambda: write(conn)))

    async def subject_exposures(self, subject: str) -> list[Exposure]:
        def query(conn: sqlite3.Connection) -> list[Exposure]:
            rows = conn.execute(
                "SELECT record FROM subject_exposures WHERE subject = ? AND expires >= ? "
                "ORDER BY seq DESC",
                (subject, time.time()),
            )
            return [Exposure.from_json(row[0]) for row in rows]

        return await self._run(query)

    async def exposure_log(self, limit: int = 100) -> list[Exposure]:
        def query(conn: sqlite3.Connection) -> list[Exposure]:
            rows = conn.execute(
                "SELECT record FROM exposure_log ORDER BY seq DESC LIMIT ?", (limit,)
            )
            return [Exposure.from_json(row[0]) for row in rows]

        return await self._run(query)

    async def count_exposure_log(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM exposure_log")

    async def claim_attribution(
        self, exposure: Exposure, movie_id: str, ttl_seconds: float
    ) -> bool:
        subject = exposure.subject
        if subject is None:
            return False

        def claim(conn: sqlite3.Connection) -> bool:
            now = time.time()
            conn.execute(
                "DELETE FROM attributions WHERE subject = ? AND claim = ? AND expires < ?",
                (subject, f"{exposure.id}|{movie_id}", now),
            )
            added = conn.execute(
                "INSERT OR IGNORE INTO attributions (subject, claim, expires) VALUES (?, ?, ?)",
                (subject, f"{exposure.id}|{movie_id}", now + ttl_seconds),
            ).rowcount
            if added and exposure.experiment and exposure.variant:
                conn.execute(
                    "INSERT INTO experiment_counts (experiment, variant, subject, attributed) "
                    "VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET attributed = attributed + 1",
                    (exposure.experiment, exposure.variant, subject),
                )
            return bool(added)

        return await self._run(lambda conn: self._transaction(conn, lambda: claim(conn)))

    async def create_experiment(self, experiment: Experiment) -> None:
        validate_experiment(experiment)

        def create(conn: sqlite3.Connection) -> None:
            kept = [
                Experiment.from_json(r[0]) for r in conn.execute("SELECT record FROM experiments")
            ]
            conflict, drop = admit_experiment(kept, experiment, time.time())
            if conflict:
                raise ExperimentConflict(conflict)
            for name in drop:
                conn.execute("DELETE FROM experiments WHERE name = ?", (name,))
                conn.execute("DELETE FROM experiment_counts WHERE experiment = ?", (name,))
            conn.execute(
                "INSERT INTO experiments (name, record) VALUES (?, ?)",
                (experiment.name, experiment.to_json()),
            )

        await self._run(lambda conn: self._transaction(conn, lambda: create(conn)))

    async def stop_experiment(self, name: str, at: float) -> Experiment:
        def stop(conn: sqlite3.Connection) -> Experiment:
            row = conn.execute("SELECT record FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownExperiment(f"no experiment named {name[:80]!r}")
            found = Experiment.from_json(row[0])
            if found.stopped_at is not None:
                return found
            stopped = dataclasses.replace(found, stopped_at=at)
            conn.execute(
                "UPDATE experiments SET record = ? WHERE name = ?", (stopped.to_json(), name)
            )
            return stopped

        return await self._run(lambda conn: self._transaction(conn, lambda: stop(conn)))

    async def experiments(self) -> list[Experiment]:
        def query(conn: sqlite3.Connection) -> list[Experiment]:
            rows = conn.execute("SELECT record FROM experiments")
            return sorted((Experiment.from_json(r[0]) for r in rows), key=lambda e: e.created_at)

        return await self._run(query)

    async def experiment_counts(self, name: str) -> dict[tuple[str, str], tuple[int, int]]:
        def query(conn: sqlite3.Connection) -> dict[tuple[str, str], tuple[int, int]]:
            rows = conn.execute(
                "SELECT variant, subject, exposures, attributed FROM experiment_counts "
                "WHERE experiment = ?",
                (name,),
            )
            return {(str(v), str(s)): (int(e), int(a)) for v, s, e, a in rows}

        return await self._run(query)

    # --- embedding cache --------------------------------------------------------------------
    async def get_embeddings(
        self, model_version: str, versions: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        def query(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
            ids = list(versions)
            found: dict[str, np.ndarray] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for mid, data in conn.execute(
                    "SELECT movie_id, data FROM embeddings "
                    f"WHERE model_version = ? AND movie_id IN ({marks})",
                    [model_version, *chunk],
                ):
                    version, vector = unpack_vector(data)
                    if version == versions[mid]:
                        found[mid] = vector
            return found

        return await self._run(query)

    async def put_embeddings(
        self, model_version: str, vectors: Mapping[str, tuple[int, np.ndarray]]
    ) -> None:
        rows = [(model_version, mid, pack_vector(v, vec)) for mid, (v, vec) in vectors.items()]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model_version, movie_id, data) "
                "VALUES (?, ?, ?)",
                rows,
            )

        await self._run(lambda conn: self._transaction(conn, lambda: write(conn)))

    # --- the serving model -------------------------------------------------------------------
    async def serving_model(self) -> str | None:
        def query(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT version FROM promotions ORDER BY id DESC LIMIT 1").fetchone()
            return str(row[0]) if row else None

        return await self._run(query)

    async def promote_model(
        self, version: str, note: str = "", *, replacing: str | Unchecked | None = UNCHECKED
    ) -> Promotion:
        def promote(conn: sqlite3.Connection) -> Promotion:
            row = conn.execute("SELECT version FROM promotions ORDER BY id DESC LIMIT 1").fetchone()
            current = str(row[0]) if row else None
            if replacing is not UNCHECKED and current != replacing:
                raise PromotionRaced(replacing, current)
            promotion = Promotion(version, time.time(), note, current)
            conn.execute(
                "INSERT INTO promotions (version, at, note, previous) VALUES (?, ?, ?, ?)",
                (promotion.version, promotion.at, promotion.note, promotion.previous),
            )
            return promotion

        return await self._run(lambda conn: self._transaction(conn, lambda: promote(conn)))

    async def model_history(self, limit: int = 20) -> list[Promotion]:
        def query(conn: sqlite3.Connection) -> list[Promotion]:
            rows = conn.execute(
                "SELECT version, at, note, previous FROM promotions ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [Promotion(str(v), float(a), str(n), p) for v, a, n, p in rows]

        return await self._run(query)

    # --- lifecycle --------------------------------------------------------------------------
    async def clear(self) -> None:
        def wipe(conn: sqlite3.Connection) -> None:
            for table in (
                "movies",
                "changes",
                "history",
                "dedupe",
                "embeddings",
                "promotions",
                "exposure_log",
                "subject_exposures",
                "attributions",
                "experiments",
                "experiment_counts",
                "meta",
            ):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('changes', 'exposure_log')")
            self._ensure_epoch(conn)

        await self._run(lambda conn: self._transaction(conn, lambda: wipe(conn)))

    async def close(self) -> None:
        def shut(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self._run(shut)
        self._executor.shutdown(wait=True)

    async def memory_bytes(self) -> dict[str, int]:
        """The database file and its write-ahead log, on disk."""

        def size(_: sqlite3.Connection) -> int:
            files = (self.path, self.path.with_name(self.path.name + "-wal"))
            return sum(file.stat().st_size for file in files if file.exists())

        return {"catalog": await self._run(size)}

    async def _scalar(self, sql: str) -> int:
        """One number; a `?` in `sql` is the history cutoff (rows written before it expired)."""

        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute(sql, (self._cutoff(),) if "?" in sql else ()).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        return await self._run(query)

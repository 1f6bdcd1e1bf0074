"""Redis backend (redis-py asyncio): the production and multi-replica store.

Catalog writes run as one Lua script so the dedupe claim, the movie rows and the change-log
entries land together. The script reads and checks everything before its first write, because
Redis does not roll a script back.

Every call has a deadline (`timeout`, plus the blocking time of a blocking read) and every
failure (refused, reset, timed out, no pooled connection free, a script error) leaves as
`StoreUnavailable`, which the API answers with a fast 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np
from redis.exceptions import RedisClusterException, RedisError, WatchError

from service.store import history, keys, redis_client
from service.store.base import Store
from service.store.encoding import events_from_keys, pack_vector, unpack_dedupe, unpack_vector
from service.store.errors import ExperimentConflict, PromotionRaced, UnknownExperiment
from service.store.history import History
from service.store.records import (
    ID_SEPARATOR,
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
from service.store.redis_activity import RedisActivity
from service.store.redis_client import MAX_BLOCK_SECONDS, deadline

# KEYS: movies, live count, sequence, changes stream, epoch, dedupe key ("" for none)
# ARGV: now, new epoch, dedupe ttl, max stream length, body digest ("" for none),
#       then triples (op, id, content)
# A dedupe claim holds "<first>-<last>|<digest>"; reply {1, claim} replay, {2, claim} conflict.
_APPLY = """
local movies, live, seqkey, stream, epochkey, dedupekey = unpack(KEYS)
local now, new_epoch, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local digest = ARGV[5]
if redis.call('EXISTS', epochkey) == 0 then redis.call('SET', epochkey, new_epoch) end
if dedupekey ~= '' then
  local prior = redis.call('GET', dedupekey)
  if prior then
    local bar = string.find(prior, '|', 1, true)
    if bar and digest ~= '' and string.sub(prior, bar + 1) ~= digest then return {2, prior} end
    return {1, prior}
  end
end
local plan = {}
local pending = {}
for i = 6, #ARGV, 3 do
  local op, id, content = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = pending[id] or redis.call('HGET', movies, id)
  local version, deleted, old = 0, '1', ''
  if cur then
    local a = string.find(cur, '|', 1, true)
    local b = string.find(cur, '|', a + 1, true)
    version = tonumber(string.sub(cur, 1, a - 1))
    deleted = string.sub(cur, a + 1, b - 1)
    old = string.sub(cur, b + 1)
  end
  local row = nil
  if op == 'upsert' then
    if deleted == '1' or old ~= content then
      row = (version + 1) .. '|0|' .. content
    end
  elseif cur and deleted == '0' then
    row = (version + 1) .. '|1|' .. old
  end
  if row then
    pending[id] = row
    local delta = 0
    if op == 'upsert' and deleted == '1' then delta = 1 end
    if op == 'delete' then delta = -1 end
    table.insert(plan, {op, id, version + 1, row, delta})
  end
end
local first, last = '', ''
for _, p in ipairs(plan) do
  redis.call('HSET', movies, p[2], p[4])
  if p[5] ~= 0 then redis.call('INCRBY', live, p[5]) end
  local seq = redis.call('INCR', seqkey)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, seq .. '-0',
             'id', p[2], 'op', p[1], 'v', p[3], 'at', now)
  if first == '' then first = seq end
  last = seq
end
local result = first .. '-' .. last
if dedupekey ~= '' then
  local claim = result
  if digest ~= '' then claim = result .. '|' .. digest end
  redis.call('SET', dedupekey, claim, 'EX', ttl)
end
local versions = {}
for _, p in ipairs(plan) do
  table.insert(versions, p[2])
  table.insert(versions, p[3])
end
return {0, result, versions}
"""


# KEYS: serving pointer, history list. ARGV: version, now, note, entries kept.
# The pointer and its history line move together; the line names what it replaced.
_PROMOTE = """
local previous = redis.call('GET', KEYS[1])
if ARGV[5] == '1' and (previous or '') ~= ARGV[6] then
  return cjson.encode({raced = true, current = previous or cjson.null})
end
local line = cjson.encode({version = ARGV[1], at = tonumber(ARGV[2]), note = ARGV[3],
                           previous = previous or cjson.null})
redis.call('SET', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], line)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return line
"""
MODEL_HISTORY_KEPT = 100

# KEYS: the exposure log (a stream). ARGV: its max length, the oldest id kept ("<ms>-0"), the
# subject lists' TTL (ms) and length, 1 when the subject lists live on this Redis; then per
# exposure: its record, its subject's list key ("" for none), its experiment's exposure-count
# hash ("" for none) and field. The lists and hashes are not in KEYS: the catalog's Redis is
# never a cluster, and a list is written here only when activity shares it.
_ADD_EXPOSURES = """
local maxlen, minid, ttl = ARGV[1], ARGV[2], ARGV[3]
local last, here = tonumber(ARGV[4]) - 1, ARGV[5] == '1'
for i = 6, #ARGV, 4 do
  redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', 'r', ARGV[i])
  local list = ARGV[i + 1]
  if here and list ~= '' then
    redis.call('LPUSH', list, ARGV[i])
    redis.call('LTRIM', list, 0, last)
    redis.call('PEXPIRE', list, ttl)
  end
  if ARGV[i + 2] ~= '' then redis.call('HINCRBY', ARGV[i + 2], ARGV[i + 3], 1) end
end
redis.call('XTRIM', KEYS[1], 'MINID', minid)
return 1
"""


def _seq_of(stream_id: bytes | str) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    return int(text.split("-", 1)[0])


class RedisStore(Store):
    """The catalog on `url`; user activity on `activity_url` (a Redis, or a Redis Cluster with
    `activity_cluster`) when given, else on `url` too."""

    def __init__(
        self,
        url: str,
        *,
        activity_max_events: int,
        changelog_max_len: int,
        history_ttl_seconds: float,
        activity_url: str | None = None,
        activity_cluster: bool = False,
        password: str | None = None,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.activity_url = activity_url
        self.activity_max_events = activity_max_events
        self.changelog_max_len = changelog_max_len
        self.history_ttl_seconds = history_ttl_seconds
        self.timeout = timeout
        bounds = redis_client.Bounds(password, timeout, max_connections)
        activity_client: Any = None  # the catalog's
        if activity_url is not None and activity_cluster:
            activity_client = redis_client.cluster(activity_url, bounds)
        elif activity_url is not None:
            activity_client = redis_client.single_node(activity_url, bounds)
        self._redis: Any = redis_client.single_node(url, bounds, block=MAX_BLOCK_SECONDS)
        self._apply = self._redis.register_script(_APPLY)
        self._promote = self._redis.register_script(_PROMOTE)
        self._add_exposures = self._redis.register_script(_ADD_EXPOSURES)
        self._activity = RedisActivity(
            self._redis if activity_client is None else activity_client,
            is_cluster=activity_cluster,
            keep=activity_max_events,
            ttl_seconds=history_ttl_seconds,
            timeout=timeout,
        )

    @property
    def _separate_activity(self) -> bool:
        return self._activity.client is not self._redis

    def _deadline(
        self, what: str, extra: float = 0.0
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Run a catalog call within the deadline; any failure becomes StoreUnavailable."""
        return deadline(what, self.timeout + extra)

    async def ping(self) -> None:
        """At startup: the operator reads this message, so it says where and why."""
        await redis_client.ping(self._redis, self.url, self.timeout)
        if self._separate_activity:
            assert self.activity_url is not None
            await redis_client.ping(
                self._activity.client,
                self.activity_url,
                self.timeout,
                is_cluster=self._activity.is_cluster,
            )

    async def apply_changes(
        self,
        changes: Sequence[MovieChange],
        *,
        dedupe_key: str | None = None,
        dedupe_digest: str = "",
        dedupe_ttl_seconds: int = 7 * 24 * 3600,
    ) -> WriteResult:
        validate_changes(changes)
        argv: list[str | int] = [
            repr(time.time()),
            uuid.uuid4().hex,
            dedupe_ttl_seconds,
            self.changelog_max_len,
            dedupe_digest if dedupe_key else "",
        ]
        for change in changes:
            if isinstance(change, Upsert):
                argv += ["upsert", change.movie.id, change.movie.content_json()]
            else:
                assert isinstance(change, Delete)
                argv += ["delete", change.movie_id, ""]
        script_keys = [
            keys.MOVIES,
            keys.LIVE_COUNT,
            keys.SEQUENCE,
            keys.CHANGES,
            keys.EPOCH,
            keys.dedupe(dedupe_key) if dedupe_key else "",
        ]
        async with self._deadline("catalog write"):
            reply = await self._apply(keys=script_keys, args=argv)
        first, last, _ = unpack_dedupe(reply[1])
        if reply[0] != 0:
            conflict = reply[0] == 2
            return WriteResult(duplicate=True, first_seq=first, last_seq=last, conflict=conflict)
        flat = reply[2]
        versions = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return WriteResult(duplicate=False, first_seq=first, last_seq=last, versions=versions)

    async def get_movies(self, ids: Sequence[str]) -> dict[str, Movie]:
        if not ids:
            return {}
        async with self._deadline("HMGET movies"):
            rows = await self._redis.hmget(keys.MOVIES, list(ids))
        return {mid: _decode_movie(mid, row) for mid, row in zip(ids, rows, strict=True) if row}

    async def iter_movies(self, batch_size: int = 1000) -> AsyncIterator[list[Movie]]:
        cursor = 0
        while True:
            # One deadline per page: a scan of a large catalog may take longer than one call.
            async with self._deadline("HSCAN movies"):
                cursor, rows = await self._redis.hscan(keys.MOVIES, cursor, count=batch_size)
            batch = [_decode_movie(mid.decode(), row) for mid, row in rows.items()]
            live = [movie for movie in batch if not movie.deleted]
            if live:
                yield live
            if cursor == 0:
                return

    async def count_movies(self) -> int:
        async with self._deadline("GET live count"):
            return int(await self._redis.get(keys.LIVE_COUNT) or 0)

    async def read_changes(
        self, after: int, limit: int = 1000, block_seconds: float = 0.0
    ) -> list[ChangeEntry]:
        block_seconds = min(block_seconds, MAX_BLOCK_SECONDS)
        block = int(block_seconds * 1000) if block_seconds > 0 else None
        async with self._deadline("XREAD changes", extra=max(block_seconds, 0.0)):
            reply = await self._redis.xread({keys.CHANGES: f"{after}-0"}, count=limit, block=block)
        if not reply:
            return []
        _, entries = reply[0]
        return [
            ChangeEntry(
                seq=_seq_of(entry_id),
                movie_id=fields[b"id"].decode(),
                op=fields[b"op"].decode(),
                version=int(fields[b"v"]),
                accepted_at=float(fields[b"at"]),
            )
            for entry_id, fields in entries
        ]

    async def head_seq(self) -> int:
        async with self._deadline("GET sequence"):
            return int(await self._redis.get(keys.SEQUENCE) or 0)

    async def first_retained_seq(self) -> int:
        async with self._deadline("XRANGE changes"):
            head, first = await (
                self._redis.pipeline(transaction=True)
                .get(keys.SEQUENCE)
                .xrange(keys.CHANGES, count=1)
                .execute()
            )
        return _seq_of(first[0][0]) if first else int(head or 0) + 1

    async def trim_changes(self, keep_last: int) -> None:
        async with self._deadline("XTRIM changes"):
            await self._redis.xtrim(keys.CHANGES, maxlen=keep_last, approximate=False)

    async def epoch(self) -> str:
        """The epoch key plus the server's run id.

        The key goes when the data goes (flush, restart without persistence); the run id
        changes on every restart and failover, which may bring back an older snapshot whose
        sequence numbers get handed out again: either way readers must resync.
        """
        async with self._deadline("epoch"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(keys.EPOCH, uuid.uuid4().hex, nx=True)
            pipe.get(keys.EPOCH)
            _, value = await pipe.execute()
            run_id = (await self._redis.info("server")).get("run_id", "")
        return f"{value.decode() if value else ''}:{run_id}"

    async def add_events(self, user_id: str, events: Sequence[Event]) -> None:
        await self._activity.write(self._records({user_id: events}))

    async def add_events_bulk(self, events: Mapping[str, Sequence[Event]]) -> None:
        """One script call per chunk on one Redis (every user's merge, atomically), one per hash
        slot on a cluster. A user's new events travel as one record of the history format, so
        redis-py encodes one argument per user, not one per event."""
        await self._activity.write(self._records(events), bulk=True)

    @staticmethod
    def _records(events: Mapping[str, Sequence[Event]]) -> dict[str, bytes]:
        """Check every event, then each user's new events as one record (empty ones dropped)."""
        for user_id, user_events in events.items():
            validate_events(user_id, user_events)
        return {
            user_id: history.pack(sorted({history.entry(e) for e in user_events}, reverse=True))
            for user_id, user_events in events.items()
            if user_events
        }

    async def recent_history(self, user_id: str, limit: int | None = None) -> History:
        return history.decode(await self._activity.read(user_id), limit)

    async def erase_user(self, user_id: str) -> None:
        validate_user_id(user_id)
        await self._activity.erase(user_id)
        async with deadline("erase user exposures", self.timeout):
            await self._activity.client.delete(keys.exposures(user_id), keys.attributed(user_id))
        experiments = await self.experiments()
        if experiments:
            async with self._deadline("erase user from experiments"):
                pipe = self._redis.pipeline(transaction=False)
                for experiment in experiments:
                    fields = [f"{v.name}{ID_SEPARATOR}{user_id}" for v in experiment.variants]
                    pipe.hdel(keys.experiment_exposures(experiment.name), *fields)
                    pipe.hdel(keys.experiment_attributed(experiment.name), *fields)
                await pipe.execute()
        # An older release, still running during a rolling upgrade, may write the user under
        # the names of format 2 and 1 on the catalog's Redis: those go too.
        async with self._deadline("erase user (older formats)"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(keys.history_v2(user_id), keys.activity(user_id))
            pipe.srem(keys.USERS, user_id)
            await pipe.execute()

    async def upgrade(self) -> None:
        """Bring histories of older formats to the current one, once; re-running is harmless
        (the merge is idempotent), so replicas starting together may all run it.

        Format 1 (a sorted set a user) and format 2 (a record without a hash tag or a TTL, and
        the set of every user id) are read from the catalog's Redis, merged into the current
        keys (on the activity Redis when it has its own) with the TTL from now, and deleted.
        """
        async with self._deadline("format check"):
            if await self._redis.get(keys.FORMAT) == str(history.FORMAT).encode():
                return
        legacy = keys.history_v2("").encode()
        format_1 = keys.activity("").encode()
        cursor = 0
        while True:
            async with self._deadline("history upgrade", extra=5.0):
                cursor, found = await self._redis.scan(cursor, match=f"{keys.PREFIX}*", count=1000)
                old = [key for key in found if key.startswith((legacy, format_1))]
                pipe = self._redis.pipeline(transaction=False)
                for key in old:
                    if key.startswith(legacy):
                        pipe.get(key)
                    else:
                        pipe.zrange(key, 0, -1)
                stored = await pipe.execute() if old else []
            merged: dict[str, set[bytes]] = {}
            for key, value in zip(old, stored, strict=True):
                if key.startswith(legacy):
                    user_id, entries = key[len(legacy) :].decode(), history.entries(value)
                else:
                    user_id = key[len(format_1) :].decode()
                    entries = [history.entry(e) for e in events_from_keys(value)]
                if entries:
                    merged.setdefault(user_id, set()).update(entries)
            records = {user: history.pack(sorted(e, reverse=True)) for user, e in merged.items()}
            if records:
                await self._activity.write(records, bulk=True)
            if old:
                async with self._deadline("history upgrade"):
                    await self._redis.delete(*old)
            if cursor == 0:
                break
        async with self._deadline("format mark"):
            await self._redis.delete(keys.USERS)
            await self._redis.set(keys.FORMAT, history.FORMAT)

    async def count_users(self) -> int:
        """A scan over every history: for the CLI's stats, off the request path."""
        return sum([len(users) async for users in self._activity.users(1000)])

    async def sample_users(self, limit: int) -> list[tuple[str, int]]:
        found: list[str] = []
        async for users in self._activity.users(max(limit, 100)):
            found += users[: limit - len(found)]
            if len(found) >= limit:
                break
        counts = await self._activity.counts(found)
        return [(user, n) for user, n in zip(found, counts, strict=True) if n]

    async def count_events(self) -> int:
        """A scan over every history: for the CLI's stats, off the request path."""
        total = 0
        async for users in self._activity.users(1000):
            total += sum(await self._activity.counts(users))
        return total

    async def iter_histories(
        self, batch_size: int = 500
    ) -> AsyncIterator[list[tuple[str, History]]]:
        async for records in self._activity.records(batch_size):
            yield [(user, history.decode(record)) for user, record in records]

    # --- exposures, attribution and experiments ------------------------------------------
    async def add_exposures(self, exposures: Sequence[Exposure], limits: ExposureLimits) -> None:
        """One script call on the catalog's Redis: the log, the experiment counts and, when
        activity shares that Redis, each subject's list (a pipeline of one command a record
        cost ~4x the CPU); with activity on its own Redis or cluster, the subjects' lists are
        one pipeline there (split by node on a cluster)."""
        validate_exposures(exposures)
        if not exposures:
            return
        oldest_ms = max(0, int((time.time() - limits.ttl_seconds) * 1000))
        ttl_ms = max(1, round(limits.ttl_seconds * 1000))
        here = not self._separate_activity
        records = [exposure.to_json() for exposure in exposures]
        args: list[str | int] = [limits.log_max_len, f"{oldest_ms}-0", ttl_ms, limits.per_subject]
        args.append(1 if here else 0)
        for exposure, record in zip(exposures, records, strict=True):
            subject = exposure.subject
            counted = exposure.experiment and exposure.variant and subject is not None
            args += [
                record,
                keys.exposures(subject) if subject is not None else "",
                keys.experiment_exposures(exposure.experiment) if counted else "",  # type: ignore[arg-type]
                f"{exposure.variant}{ID_SEPARATOR}{subject}" if counted else "",
            ]
        async with self._deadline("add exposures"):
            await self._add_exposures(keys=[keys.EXPOSURES], args=args)
        if here:
            return
        by_subject: dict[str, list[str]] = {}
        for exposure, record in zip(exposures, records, strict=True):
            if exposure.subject is not None:
                by_subject.setdefault(exposure.subject, []).append(record)
        if not by_subject:
            return
        async with deadline("add subject exposures", self.timeout):
            pipe = self._activity.client.pipeline(transaction=False)
            for subject, subject_records in by_subject.items():
                key = keys.exposures(subject)
                pipe.lpush(key, *subject_records)  # oldest first: the newest ends first
                pipe.ltrim(key, 0, limits.per_subject - 1)
                pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    async def subject_exposures(self, subject: str) -> list[Exposure]:
        async with deadline("LRANGE exposures", self.timeout):
            rows = await self._activity.client.lrange(keys.exposures(subject), 0, -1)
        return [Exposure.from_json(row) for row in rows]

    async def exposure_log(self, limit: int = 100) -> list[Exposure]:
        async with self._deadline("XREVRANGE exposures"):
            rows = await self._redis.xrevrange(keys.EXPOSURES, count=limit)
        return [Exposure.from_json(fields[b"r"]) for _, fields in rows]

    async def count_exposure_log(self) -> int:
        async with self._deadline("XLEN exposures"):
            return int(await self._redis.xlen(keys.EXPOSURES))

    async def claim_attribution(
        self, exposure: Exposure, movie_id: str, ttl_seconds: float
    ) -> bool:
        if exposure.subject is None:
            return False
        key = keys.attributed(exposure.subject)
        async with deadline("claim attribution", self.timeout):
            pipe = self._activity.client.pipeline(transaction=False)
            pipe.hsetnx(key, f"{exposure.id}{ID_SEPARATOR}{movie_id}", 1)
            pipe.pexpire(key, max(1, round(ttl_seconds * 1000)))
            claimed, _ = await pipe.execute()
        if claimed and exposure.experiment and exposure.variant:
            field = f"{exposure.variant}{ID_SEPARATOR}{exposure.subject}"
            async with self._deadline("count attribution"):
                await self._redis.hincrby(keys.experiment_attributed(exposure.experiment), field, 1)
        return bool(claimed)

    async def create_experiment(self, experiment: Experiment) -> None:
        """WATCH the experiments' hash, decide in Python (`admit_experiment`), write in MULTI."""
        validate_experiment(experiment)
        async with (
            self._deadline("create experiment"),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            while True:
                try:
                    await pipe.watch(keys.EXPERIMENTS)
                    rows = await pipe.hvals(keys.EXPERIMENTS)
                    kept = [Experiment.from_json(row) for row in rows]
                    conflict, drop = admit_experiment(kept, experiment, time.time())
                    if conflict:
                        raise ExperimentConflict(conflict)
                    pipe.multi()
                    for name in drop:
                        pipe.hdel(keys.EXPERIMENTS, name)
                        pipe.delete(
                            keys.experiment_exposures(name), keys.experiment_attributed(name)
                        )
                    pipe.hset(keys.EXPERIMENTS, experiment.name, experiment.to_json())
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def stop_experiment(self, name: str, at: float) -> Experiment:
        async with (
            self._deadline("stop experiment"),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            while True:
                try:
                    await pipe.watch(keys.EXPERIMENTS)
                    row = await pipe.hget(keys.EXPERIMENTS, name)
                    if row is None:
                        raise UnknownExperiment(f"no experiment named {name[:80]!r}")
                    found = Experiment.from_json(row)
                    if found.stopped_at is not None:
                        return found
                    stopped = dataclasses.replace(found, stopped_at=at)
                    pipe.multi()
                    pipe.hset(keys.EXPERIMENTS, name, stopped.to_json())
                    await pipe.execute()
                    return stopped
                except WatchError:
                    continue

    async def experiments(self) -> list[Experiment]:
        async with self._deadline("HVALS experiments"):
            rows = await self._redis.hvals(keys.EXPERIMENTS)
        return sorted((Experiment.from_json(row) for row in rows), key=lambda e: e.created_at)

    async def experiment_counts(self, name: str) -> dict[tuple[str, str], tuple[int, int]]:
        found: dict[tuple[str, str], list[int]] = {}
        for column, key in enumerate(
            (keys.experiment_exposures(name), keys.experiment_attributed(name))
        ):
            cursor = 0
            while True:
                async with self._deadline("HSCAN experiment counts"):
                    cursor, page = await self._redis.hscan(key, cursor, count=5000)
                for field, value in page.items():
                    variant, subject = field.decode().split(ID_SEPARATOR, 1)
                    found.setdefault((variant, subject), [0, 0])[column] = int(value)
                if cursor == 0:
                    break
        return {pair: (counts[0], counts[1]) for pair, counts in found.items()}

    async def get_embeddings(
        self, model_version: str, versions: Mapping[str, int]
    ) -> dict[str, np.ndarray]:
        ids = list(versions)
        if not ids:
            return {}
        async with self._deadline("HMGET embeddings"):
            rows = await self._redis.hmget(keys.embeddings(model_version), ids)
        found: dict[str, np.ndarray] = {}
        for mid, raw in zip(ids, rows, strict=True):
            if raw:
                version, vector = unpack_vector(raw)
                if version == versions[mid]:
                    found[mid] = vector
        return found

    async def put_embeddings(
        self, model_version: str, vectors: Mapping[str, tuple[int, np.ndarray]]
    ) -> None:
        if vectors:
            mapping = {mid: pack_vector(v, vec) for mid, (v, vec) in vectors.items()}
            async with self._deadline("HSET embeddings"):
                await self._redis.hset(keys.embeddings(model_version), mapping=mapping)

    async def serving_model(self) -> str | None:
        async with self._deadline("GET serving model"):
            value = await self._redis.get(keys.SERVING_MODEL)
        return value.decode() if value else None

    async def promote_model(
        self, version: str, note: str = "", *, replacing: str | Unchecked | None = UNCHECKED
    ) -> Promotion:
        checked = replacing is not UNCHECKED
        expected = replacing if isinstance(replacing, str) else ""  # "" stands for none
        async with self._deadline("promote model"):
            raw = await self._promote(
                keys=[keys.SERVING_MODEL, keys.MODEL_HISTORY],
                args=[version, repr(time.time()), note, MODEL_HISTORY_KEPT, int(checked), expected],
            )
        answer = json.loads(raw)
        if answer.get("raced"):
            raise PromotionRaced(expected or None, answer["current"])
        return Promotion.from_json(raw)

    async def model_history(self, limit: int = 20) -> list[Promotion]:
        async with self._deadline("LRANGE model history"):
            rows = await self._redis.lrange(keys.MODEL_HISTORY, 0, limit - 1)
        return [Promotion.from_json(row) for row in rows]

    async def clear(self) -> None:
        """Delete everything; the empty store is in the current history format, and says so
        (without the mark, every replica's open scans the whole keyspace for older keys:
        ~2,000 SCAN round trips at 1M movies)."""
        cursor = 0
        while True:
            async with self._deadline("clear"):
                cursor, found = await self._redis.scan(cursor, match=f"{keys.PREFIX}*", count=1000)
                if found:
                    await self._redis.delete(*found)
            if cursor == 0:
                break
        if self._separate_activity:
            await self._activity.clear()
        async with self._deadline("format mark"):
            await self._redis.set(keys.FORMAT, history.FORMAT)

    async def memory_bytes(self) -> dict[str, int]:
        """INFO memory's used_memory of the catalog's Redis, and of the activity's (summed over
        a cluster's primaries) when it has its own."""
        async with self._deadline("INFO memory"):
            parts = {"catalog": int((await self._redis.info("memory"))["used_memory"])}
        if self._separate_activity:
            parts["activity"] = await self._activity.used_memory()
        return parts

    async def close(self) -> None:
        clients = [self._redis, self._activity.client] if self._separate_activity else [self._redis]
        for client in clients:
            with contextlib.suppress(TimeoutError, RedisError, RedisClusterException, OSError):
                async with asyncio.timeout(self.timeout):
                    await client.aclose()


def _decode_movie(movie_id: str, row: bytes) -> Movie:
    text = row.decode()
    version, deleted, content = text.split("|", 2)
    return Movie.from_content(movie_id, content, int(version), deleted == "1")

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
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store import history, keys
from service.store.base import Store
from service.store.encoding import events_from_keys, pack_vector, unpack_dedupe, unpack_vector
from service.store.errors import StoreUnavailable
from service.store.history import History
from service.store.records import (
    ChangeEntry,
    Delete,
    Event,
    Movie,
    MovieChange,
    Upsert,
    WriteResult,
    validate_changes,
    validate_events,
)

MAX_BLOCK_SECONDS = 5.0  # the longest blocking read; the socket timeout must outlast it
# Connections beyond one per in-flight request: the refresher's blocking read and its writes.
SPARE_CONNECTIONS = 4

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


# KEYS: the users set, then each user's history key
# ARGV: how many entries to keep, then per user: its id, the record of its new events
# (service/store/history.py). For each user, the same merge as history.merge: the union of the
# stored and the new entries, identical ones once, descending by their bytes, the newest
# `keep`. Bytes compare one by one (Lua's `<` on strings follows the locale).
_ADD_EVENTS = """
local keep, width = tonumber(ARGV[1]), 17
local function entries(record, seen, items)
  local n = struct.unpack('>I4', record)
  local pos = 5 + n * width
  for i = 1, n do
    local bar = string.find(record, '|', pos, true)
    local stop = bar and bar - 1 or #record
    local fixed = string.sub(record, 5 + (i - 1) * width, 4 + i * width)
    local e = fixed .. string.sub(record, pos, stop)
    if not seen[e] then
      seen[e] = true
      items[#items + 1] = {e, struct.unpack('>d', e)}
    end
    pos = stop + 2
  end
end
local function newer(x, y)
  if x[2] ~= y[2] then return x[2] > y[2] end
  local a, b = x[1], y[1]
  for i = 9, math.min(#a, #b) do
    local p, q = string.byte(a, i), string.byte(b, i)
    if p ~= q then return p > q end
  end
  return #a > #b
end
for u = 2, #KEYS do
  local seen, items = {}, {}
  local stored = redis.call('GET', KEYS[u])
  if stored then entries(stored, seen, items) end
  entries(ARGV[2 * u - 1], seen, items)
  table.sort(items, newer)
  local fixed, ids = {}, {}
  for i = 1, math.min(keep, #items) do
    fixed[i] = string.sub(items[i][1], 1, width)
    ids[i] = string.sub(items[i][1], width + 1)
  end
  local packed = struct.pack('>I4', #fixed) .. table.concat(fixed) .. table.concat(ids, '|')
  redis.call('SET', KEYS[u], packed)
  redis.call('SADD', KEYS[1], ARGV[2 * u - 2])
end
return #KEYS - 1
"""


def _seq_of(stream_id: bytes | str) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    return int(text.split("-", 1)[0])


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        *,
        activity_max_events: int,
        changelog_max_len: int,
        password: str | None = None,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.activity_max_events = activity_max_events
        self.changelog_max_len = changelog_max_len
        self.timeout = timeout
        # A blocking pool: past `max_connections` a call waits for a free connection (within
        # its deadline) instead of failing at once. Servers close idle connections (Redis
        # `timeout`, failovers): retrying is safe because every write here is idempotent
        # (unchanged upserts, repeated deletes and identical events are no-ops); the retries
        # fit inside the call's deadline, which cuts them short.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections + SPARE_CONNECTIONS,
            timeout=timeout,
            socket_connect_timeout=timeout,
            socket_timeout=timeout + MAX_BLOCK_SECONDS,
            socket_keepalive=True,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            password=password,
        )
        # Any: redis-py types every reply as a union of all it could be.
        self._redis: Any = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self._apply = self._redis.register_script(_APPLY)
        self._add_events = self._redis.register_script(_ADD_EVENTS)

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str, extra: float = 0.0) -> AsyncIterator[None]:
        """Run a call within the deadline; any failure of Redis becomes StoreUnavailable."""
        seconds = self.timeout + extra
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise StoreUnavailable(f"Redis did not answer {what} within {seconds:g}s") from None
        except (RedisError, OSError) as exc:
            # The kind, not the text: clients see this message, and the text names hosts.
            raise StoreUnavailable(f"Redis {what} failed ({type(exc).__name__})") from exc

    async def ping(self) -> None:
        """At startup: the operator reads this message, so it says where and why."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.ping()
        except TimeoutError:
            raise StoreUnavailable(
                f"Redis at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None

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
        async with self._deadline("event write"):
            await self._merge(self._redis, {user_id: events})

    async def add_events_bulk(self, events: Mapping[str, Sequence[Event]]) -> None:
        """One script call per chunk: every user's merge, atomically. A user's new events
        travel as one record of the history format, so redis-py encodes one argument per user,
        not one per event."""
        # An import chunk (20,000 events) is far bigger than a request's write: more time.
        async with self._deadline("bulk event write", extra=30.0):
            await self._merge(self._redis, events)

    async def _merge(self, client: Any, events: Mapping[str, Sequence[Event]]) -> None:
        """Check every event, then merge them into their users' records (on `client`: the
        connection, or a pipeline that queues the call)."""
        for user_id, user_events in events.items():
            validate_events(user_id, user_events)
        users = [user for user, user_events in events.items() if user_events]
        if not users:
            return
        argv: list[str | int | bytes] = [self.activity_max_events]
        for user_id in users:
            new = {history.entry(event) for event in events[user_id]}
            argv += [user_id, history.pack(sorted(new, reverse=True))]
        script_keys = [keys.USERS, *(keys.history(user) for user in users)]
        await self._add_events(keys=script_keys, args=argv, client=client)

    async def recent_history(self, user_id: str, limit: int | None = None) -> History:
        async with self._deadline("GET history"):
            record = await self._redis.get(keys.history(user_id))
        return history.decode(record, limit)

    async def upgrade(self) -> None:
        """Convert format-1 histories (sorted sets) to records, once; re-running is harmless
        (the merge is idempotent), so replicas starting together may all run it."""
        async with self._deadline("format check"):
            if await self._redis.get(keys.FORMAT) == str(history.FORMAT).encode():
                return
        cursor = 0
        while True:
            async with self._deadline("format-1 history upgrade", extra=5.0):
                cursor, found = await self._redis.scan(
                    cursor, match=keys.ACTIVITY_PATTERN, count=1000
                )
                for key in found:
                    user_id = key.decode().removeprefix(keys.activity(""))
                    events = events_from_keys(await self._redis.zrange(key, 0, -1))
                    pipe = self._redis.pipeline(transaction=True)
                    await self._merge(pipe, {user_id: events})
                    pipe.delete(key)
                    await pipe.execute()
            if cursor == 0:
                break
        async with self._deadline("format mark"):
            await self._redis.set(keys.FORMAT, history.FORMAT)

    async def count_users(self) -> int:
        async with self._deadline("SCARD users"):
            return int(await self._redis.scard(keys.USERS))

    async def sample_users(self, limit: int) -> list[tuple[str, int]]:
        users: list[str] = []
        async for user in self._redis.sscan_iter(keys.USERS, count=max(limit, 10)):
            users.append(user.decode())
            if len(users) >= limit:
                break
        pipe = self._redis.pipeline(transaction=False)
        for user in users:
            pipe.getrange(keys.history(user), 0, history.HEADER - 1)
        counts = await pipe.execute() if users else []
        return [(user, history.count(n)) for user, n in zip(users, counts, strict=True)]

    async def count_events(self) -> int:
        """A scan over every user: for the CLI's stats, off the request path."""
        total = 0
        cursor = 0
        while True:
            async with self._deadline("count events"):
                cursor, users = await self._redis.sscan(keys.USERS, cursor, count=1000)
                pipe = self._redis.pipeline(transaction=False)
                for user in users:
                    pipe.getrange(keys.history(user.decode()), 0, history.HEADER - 1)
                total += sum(history.count(n) for n in await pipe.execute())
            if cursor == 0:
                return total

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

    async def clear(self) -> None:
        """Delete everything; the empty store is in the current history format, and says so
        (without the mark, every replica's open scans the whole keyspace for format-1 keys:
        ~2,000 SCAN round trips at 1M movies)."""
        cursor = 0
        while True:
            async with self._deadline("clear"):
                cursor, found = await self._redis.scan(cursor, match=f"{keys.PREFIX}*", count=1000)
                if found:
                    await self._redis.delete(*found)
            if cursor == 0:
                break
        async with self._deadline("format mark"):
            await self._redis.set(keys.FORMAT, history.FORMAT)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            async with asyncio.timeout(self.timeout):
                await self._redis.aclose()


def _decode_movie(movie_id: str, row: bytes) -> Movie:
    text = row.decode()
    version, deleted, content = text.split("|", 2)
    return Movie.from_content(movie_id, content, int(version), deleted == "1")

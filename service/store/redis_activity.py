"""User activity in Redis: one packed history record a user (`keys.history`), with a TTL, on the
catalog's Redis, a Redis of its own, or a Redis Cluster.

Nothing here spans users: no set of all users, no script or transaction over keys of different
users' slots. On a cluster, a write of many users (an import chunk) runs one script call per
hash slot, several at a time; counting and sampling scan every primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from service.store import history, keys
from service.store.redis_client import deadline

# KEYS: each user's history key
# ARGV: how many entries to keep, the TTL in milliseconds, then per user the record of its new
# events (service/store/history.py). For each user, the same merge as history.merge: the union
# of the stored and the new entries, identical ones once, descending by their bytes, the newest
# `keep`, written with the TTL (a write refreshes it). Bytes compare one by one (Lua's `<` on
# strings follows the locale).
_ADD_EVENTS = """
local keep, ttl, width = tonumber(ARGV[1]), ARGV[2], 17
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
for u = 1, #KEYS do
  local seen, items = {}, {}
  local stored = redis.call('GET', KEYS[u])
  if stored then entries(stored, seen, items) end
  entries(ARGV[u + 2], seen, items)
  table.sort(items, newer)
  local fixed, ids = {}, {}
  for i = 1, math.min(keep, #items) do
    fixed[i] = string.sub(items[i][1], 1, width)
    ids[i] = string.sub(items[i][1], width + 1)
  end
  local packed = struct.pack('>I4', #fixed) .. table.concat(fixed) .. table.concat(ids, '|')
  redis.call('SET', KEYS[u], packed, 'PX', ttl)
end
return #KEYS
"""

BULK_EXTRA_SECONDS = 30.0  # an import chunk (20,000 events) is far bigger than a request's
# Script calls of one write in flight at once on a cluster, within its per-node pools.
CLUSTER_WRITES_IN_FLIGHT = 16


class RedisActivity:
    """Histories on `client`: one Redis (`is_cluster` False) or a `RedisCluster`."""

    def __init__(
        self, client: Any, *, is_cluster: bool, keep: int, ttl_seconds: float, timeout: float
    ) -> None:
        self.client = client
        self.is_cluster = is_cluster
        self.keep = keep
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self.timeout = timeout
        self._script = client.register_script(_ADD_EVENTS)

    async def write(self, records: Mapping[str, bytes], *, bulk: bool = False) -> None:
        """Merge each user's record of new entries into their history and refresh its TTL:
        one script call on one node (atomic), one per hash slot on a cluster (each atomic)."""
        if not records:
            return
        groups: dict[int, list[str]] = {}
        for user in records:
            slot = key_slot(keys.history(user).encode()) if self.is_cluster else 0
            groups.setdefault(slot, []).append(user)
        what = "bulk event write" if bulk else "event write"
        async with deadline(what, self.timeout + (BULK_EXTRA_SECONDS if bulk else 0.0)):
            if len(groups) == 1:
                (users,) = groups.values()
                await self._script(keys=self._keys(users), args=self._args(records, users))
            else:
                await self._write_per_slot(records, list(groups.values()))

    async def _write_per_slot(self, records: Mapping[str, bytes], groups: list[list[str]]) -> None:
        """One script call a hash slot, `CLUSTER_WRITES_IN_FLIGHT` at a time (a cluster
        pipeline cannot carry EVALSHA); each runs to its end, then the first failure is
        raised."""
        gate = asyncio.Semaphore(CLUSTER_WRITES_IN_FLIGHT)

        async def one(users: list[str]) -> None:
            async with gate:
                await self._script(keys=self._keys(users), args=self._args(records, users))

        results = await asyncio.gather(*(one(users) for users in groups), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @staticmethod
    def _keys(users: Sequence[str]) -> list[str]:
        return [keys.history(user) for user in users]

    def _args(self, records: Mapping[str, bytes], users: Sequence[str]) -> list[str | int | bytes]:
        return [self.keep, self.ttl_ms, *(records[user] for user in users)]

    async def read(self, user_id: str) -> bytes | None:
        async with deadline("GET history", self.timeout):
            record: bytes | None = await self.client.get(keys.history(user_id))
        return record

    async def erase(self, user_id: str) -> None:
        async with deadline("erase user", self.timeout):
            await self.client.delete(keys.history(user_id))

    async def users(self, page: int) -> AsyncIterator[list[str]]:
        """Every user with a history, a SCAN page at a time (each page under its own deadline;
        on a cluster, every primary's keys in turn)."""
        nodes = self.client.get_primaries() if self.is_cluster else [None]
        for node in nodes:
            cursor = 0
            while True:
                async with deadline("SCAN histories", self.timeout):
                    if node is None:
                        cursor, found = await self.client.scan(
                            cursor, match=keys.HISTORY_PATTERN, count=page
                        )
                    else:
                        cursors, found = await self.client.scan(
                            cursor, match=keys.HISTORY_PATTERN, count=page, target_nodes=node
                        )
                        cursor = cursors[node.name]
                if found:
                    yield [keys.user_of_history(key) for key in found]
                if cursor == 0:
                    break

    async def records(self, page: int) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every user's history record, a SCAN page at a time: one pipeline of GETs a page
        (on a cluster, split by node), each under its own deadline. A user whose history
        expired between the SCAN and the GET is left out."""
        async for users in self.users(page):
            async with deadline("GET histories", self.timeout):
                pipe = self.client.pipeline(transaction=False)
                for user in users:
                    pipe.get(keys.history(user))
                found = await pipe.execute()
            records = [(user, record) for user, record in zip(users, found, strict=True) if record]
            if records:
                yield records

    async def counts(self, users: Sequence[str]) -> list[int]:
        """How many events each user's history keeps (0: gone since it was listed)."""
        if not users:
            return []
        async with deadline("history counts", self.timeout):
            pipe = self.client.pipeline(transaction=False)
            for user in users:
                pipe.getrange(keys.history(user), 0, history.HEADER - 1)
            headers = await pipe.execute()
        return [history.count(header) for header in headers]

    async def clear(self) -> None:
        """Delete every key of every user (histories, exposures, attribution claims) of a
        Redis or cluster activity has to itself."""
        nodes = self.client.get_primaries() if self.is_cluster else [None]
        for node in nodes:
            cursor = 0
            while True:
                async with deadline("clear activity", self.timeout):
                    if node is None:
                        cursor, found = await self.client.scan(
                            cursor, match=keys.USER_PATTERN, count=1000
                        )
                    else:
                        cursors, found = await self.client.scan(
                            cursor, match=keys.USER_PATTERN, count=1000, target_nodes=node
                        )
                        cursor = cursors[node.name]
                    if found:
                        pipe = self.client.pipeline(transaction=False)
                        for key in found:
                            pipe.delete(key)
                        await pipe.execute()
                if cursor == 0:
                    break

    async def used_memory(self) -> int:
        """INFO memory's used_memory: of the node, or summed over a cluster's primaries."""
        async with deadline("INFO memory", self.timeout):
            if not self.is_cluster:
                return int((await self.client.info("memory"))["used_memory"])
            per_node = await self.client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(info["used_memory"]) for info in per_node.values())

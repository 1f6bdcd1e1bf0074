"""The packed history record: both backends merge it exactly as `history.merge` does, it keeps
what users see (order, ties, ratings, bounds), and data of older formats is converted on open."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bench.harness.redis import RedisServer
from embeddings.weights import event_weight
from service.store import Event, InvalidRecord, Store, open_store
from service.store import history as h
from service.store.sqlite import sqlite_path

pytestmark = pytest.mark.anyio

# Ties on the timestamp, ids that are prefixes of each other and not ASCII, ratings and none.
TRICKY = [
    Event("10", "watch", 100.0),
    Event("1", "watch", 100.0),
    Event("é", "rate", 100.0, 4.5),
    Event("1", "rate", 100.0, 1.0),
    Event("1", "rate", 100.0, 0.5),
    Event("2", "watch", 99.5, 3.0),
    Event("3", "rate", 0.0, 5.0),
    Event("4", "watch", 1e9),
]


async def test_both_backends_merge_exactly_like_the_reference(store_url: str) -> None:
    """Redis merges in Lua, SQLite in Python: same bytes in, same order out, in any batching."""
    store = await open_store(store_url, activity_max_events=6)
    try:
        await store.add_events("u", TRICKY[:3])
        await store.add_events("u", TRICKY[3:] + TRICKY[:2])  # two repeats collapse
        expected = h.merge(None, [h.entry(e) for e in TRICKY], 6)
        assert await store.recent_events("u") == h.decode(expected).events()
        got = await store.recent_events("u")
        # newest first; a tie orders by rating (none first), kind, then id, all descending
        assert [(e.movie_id, e.rating) for e in got] == [
            ("4", None),
            ("10", None),
            ("1", None),
            ("é", 4.5),
            ("1", 1.0),
            ("1", 0.5),
        ]
        assert await store.count_events() == 6
    finally:
        await store.close()


async def test_history_columns_match_the_events_and_their_weights(store: Store) -> None:
    await store.add_events("u", TRICKY[:4])
    history = await store.recent_history("u")
    events = await store.recent_events("u")
    assert history.movie_ids == [e.movie_id for e in events]
    expected = [event_weight(e.kind, e.rating) for e in events]
    np.testing.assert_allclose(history.weights(), expected)
    assert (await store.recent_history("u", limit=2)).movie_ids == history.movie_ids[:2]
    assert len(await store.recent_history("nobody")) == 0


def test_a_truncated_record_is_refused_not_misread() -> None:
    record = h.merge(None, [h.entry(e) for e in TRICKY], 10)
    with pytest.raises(InvalidRecord):
        h.decode(record[:20])
    with pytest.raises(InvalidRecord):
        h.decode(record + b"|extra")


def test_of_keeps_a_request_history_in_its_order() -> None:
    events = [Event("b", "watch", 0.0), Event("a", "rate", 0.0, 2.0)]
    assert h.History.of(events).events() == events


async def test_redis_format_1_histories_are_converted_on_open(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.zadd("movie-recs:activity:old", {"1|watch||100.0": 100.0, "2|rate|4.0|200.0": 200.0})
    client.sadd("movie-recs:users", "old")
    store = await open_store(redis_url)
    try:
        assert await store.recent_events("old") == [
            Event("2", "rate", 200.0, 4.0),
            Event("1", "watch", 100.0),
        ]
        assert not client.exists("movie-recs:activity:old")
        assert await store.count_users() == 1 and await store.count_events() == 2
    finally:
        await store.close()
        client.close()


@pytest.mark.parametrize("activity", ["on the catalog's redis", "on a redis of its own"])
async def test_redis_format_2_histories_move_to_their_new_keys_with_a_ttl(
    redis_url: str, activity: str, tmp_path: Path
) -> None:
    """Records under `history:<id>` (no TTL) and the set of every user become hash-tagged keys
    with the TTL, where the activity now lives; the set goes."""
    import redis

    old = {
        "old": h.merge(None, [h.entry(e) for e in TRICKY[:3]], 200),
        "{braced}": h.merge(None, [h.entry(TRICKY[5])], 200),
    }
    with redis.Redis.from_url(redis_url) as client:
        for user, record in old.items():
            client.set(f"movie-recs:history:{user}", record)
        client.sadd("movie-recs:users", *old)
        client.set("movie-recs:format", 2)
    with contextlib.ExitStack() as stack:
        activity_url = None
        if activity == "on a redis of its own":
            activity_url = stack.enter_context(RedisServer()).url
        store = await open_store(redis_url, activity_url=activity_url, history_ttl_seconds=3600)
        try:
            for user, record in old.items():
                assert await store.recent_events(user) == h.decode(record).events()
            assert await store.count_users() == 2
        finally:
            await store.close()
        with redis.Redis.from_url(redis_url) as catalog:
            assert catalog.keys("movie-recs:history:*") == []
            assert not catalog.exists("movie-recs:users")
            assert catalog.get("movie-recs:format") == str(h.FORMAT).encode()
        with redis.Redis.from_url(activity_url or redis_url) as client:
            ttl = client.pttl("movie-recs:user:{%7Bbraced%7D}:history") / 1000
        assert 3590 < ttl <= 3600


async def test_sqlite_histories_from_before_the_ttl_are_kept_from_the_upgrade_on(
    sqlite_url: str,
) -> None:
    path = sqlite_path(sqlite_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = h.merge(None, [h.entry(e) for e in TRICKY[:2]], 200)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE history (user_id TEXT PRIMARY KEY, events INTEGER NOT NULL, "
            "record BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO history VALUES ('old', 2, ?)", (record,))
    conn.close()
    store = await open_store(sqlite_url, history_ttl_seconds=0.5)
    try:
        assert await store.recent_events("old") == h.decode(record).events()
        await asyncio.sleep(0.6)
        assert await store.recent_events("old") == []  # expires as a history written at open
    finally:
        await store.close()


async def test_a_cleared_redis_store_stays_marked_as_converted(redis_url: str) -> None:
    """Else every replica's start scans the whole keyspace for format-1 histories."""
    import redis

    client = redis.Redis.from_url(redis_url)
    store = await open_store(redis_url)
    try:
        await store.clear()
        assert client.get("movie-recs:format") == str(h.FORMAT).encode()
    finally:
        await store.close()
        client.close()


async def test_sqlite_format_1_histories_are_converted_on_open(sqlite_url: str) -> None:
    path = sqlite_path(sqlite_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE activity (user_id TEXT NOT NULL, ts REAL NOT NULL, "
            "payload TEXT NOT NULL, PRIMARY KEY (user_id, payload)) WITHOUT ROWID"
        )
        conn.executemany(
            "INSERT INTO activity VALUES (?, ?, ?)",
            [("old", 100.0, "1|watch||100.0"), ("old", 200.0, "2|rate|4.0|200.0")],
        )
    conn.close()
    store = await open_store(sqlite_url)
    try:
        assert await store.recent_events("old") == [
            Event("2", "rate", 200.0, 4.0),
            Event("1", "watch", 100.0),
        ]
        assert await store.count_users() == 1 and await store.count_events() == 2
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "activity" not in tables


async def test_a_dislike_is_kept_and_read_back_on_both_backends(store: Store) -> None:
    """The `dislike` kind (code 2) goes through either backend's merge and comes back as
    itself; a record written before the kind existed (codes 0 and 1) reads as it did."""
    old = h.merge(None, [h.entry(e) for e in TRICKY[:3]], 10)
    assert set(h.decode(old).kinds.tolist()) <= {0, 1}  # what stores held before
    await store.add_events("u", [Event("5", "dislike", 300.0), *TRICKY[:2]])
    events = await store.recent_events("u")
    assert events[0] == Event("5", "dislike", 300.0)
    assert [e.kind for e in events[1:]] == ["watch", "watch"]
    assert h.decode(old).events() == sorted(TRICKY[:3], key=h.entry, reverse=True)


def test_disliked_and_liked_follow_the_one_rule() -> None:
    """A dislike event, or a rating at or below the threshold (embeddings.weights), is
    disliked; a watch or a rating at or above the reason threshold is liked; neither both."""
    history = h.History.of(
        [
            Event("a", "dislike", 5.0),
            Event("b", "rate", 4.0, 2.0),
            Event("c", "rate", 3.0, 2.5),
            Event("d", "rate", 2.0, 3.0),
            Event("e", "watch", 1.0),
        ]
    )
    assert history.disliked().tolist() == [True, True, False, False, False]
    assert history.disliked(at=0.0).tolist() == [True, False, False, False, False]
    assert history.liked(3.0).tolist() == [False, False, False, True, True]

"""One contract, run against both backends (SQLite file and a real redis-server); its activity
half also with the activity on a Redis Cluster beside the catalog's Redis (`activity_store`)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service.config import Settings
from service.store import (
    Delete,
    Event,
    InvalidRecord,
    Movie,
    PromotionRaced,
    Store,
    StoreError,
    Upsert,
    open_store,
    store_from_settings,
)
from tests.support.store import OpenActivity

pytestmark = pytest.mark.anyio


def movie(mid: str, title: str = "A Movie", **kw: object) -> Movie:
    return Movie(id=mid, title=title, **kw)  # type: ignore[arg-type]


async def test_upsert_then_get_roundtrips_every_field(store: Store) -> None:
    m = movie("1", "Toy Story", genres=("Animation", "Comedy"), year=1995, tags=("pixar",))
    result = await store.apply_changes([Upsert(m)])

    got = (await store.get_movies(["1", "missing"]))["1"]
    assert (got.title, got.genres, got.year, got.tags) == (m.title, m.genres, 1995, m.tags)
    assert got.version == 1 and not got.deleted
    assert result.first_seq == result.last_seq == 1 and result.versions == {"1": 1}
    assert await store.count_movies() == 1


async def test_change_log_is_ordered_and_carries_versions(store: Store) -> None:
    await store.apply_changes([Upsert(movie("a")), Upsert(movie("b"))])
    await store.apply_changes([Upsert(movie("a", "A, renamed")), Delete("b")])

    entries = await store.read_changes(after=0)
    assert [(e.seq, e.movie_id, e.op, e.version) for e in entries] == [
        (1, "a", "upsert", 1),
        (2, "b", "upsert", 1),
        (3, "a", "upsert", 2),
        (4, "b", "delete", 2),
    ]
    assert [e.seq for e in await store.read_changes(after=2, limit=1)] == [3]
    assert await store.head_seq() == 4
    assert entries[0].accepted_at == pytest.approx(time.time(), abs=60)


async def test_deleted_movies_are_flagged_not_listed(store: Store) -> None:
    await store.apply_changes([Upsert(movie("a")), Upsert(movie("b")), Delete("a")])

    assert (await store.get_movies(["a"]))["a"].deleted
    listed = [m.id async for batch in store.iter_movies(batch_size=1) for m in batch]
    assert listed == ["b"]
    assert await store.count_movies() == 1


async def test_unchanged_upsert_and_repeated_delete_append_nothing(store: Store) -> None:
    await store.apply_changes([Upsert(movie("a")), Delete("zz")])
    again = await store.apply_changes([Upsert(movie("a")), Delete("zz")])

    assert again.applied == 0 and again.first_seq is None
    assert await store.head_seq() == 1


async def test_a_failing_write_appends_nothing(store: Store) -> None:
    await store.apply_changes([Upsert(movie("a"))])
    bad = Movie(id="b", title="")  # empty title is invalid

    with pytest.raises(InvalidRecord, match="title"):
        await store.apply_changes([Upsert(movie("c")), Upsert(bad), Delete("a")])

    assert await store.head_seq() == 1
    assert set(await store.get_movies(["a", "b", "c"])) == {"a"}
    assert not (await store.get_movies(["a"]))["a"].deleted


async def test_dedupe_key_applies_once_and_replays_the_original_range(store: Store) -> None:
    first = await store.apply_changes([Upsert(movie("a"))], dedupe_key="msg_1")
    replay = await store.apply_changes([Upsert(movie("a", "other"))], dedupe_key="msg_1")

    assert not first.duplicate and replay.duplicate
    assert (replay.first_seq, replay.last_seq) == (first.first_seq, first.last_seq)
    assert (await store.get_movies(["a"]))["a"].title == "A Movie"
    assert await store.head_seq() == 1


async def test_a_dedupe_key_reused_with_another_digest_is_a_conflict(store: Store) -> None:
    first = await store.apply_changes([Upsert(movie("a"))], dedupe_key="k", dedupe_digest="d1")
    replay = await store.apply_changes([Upsert(movie("a"))], dedupe_key="k", dedupe_digest="d1")
    other = await store.apply_changes(
        [Upsert(movie("a", "changed"))], dedupe_key="k", dedupe_digest="d2"
    )

    assert not first.conflict and replay.duplicate and not replay.conflict
    assert other.duplicate and other.conflict and other.applied == 1  # the original's range
    assert (await store.get_movies(["a"]))["a"].title == "A Movie"
    assert await store.head_seq() == 1


@pytest.mark.parametrize(
    "bad",
    [
        Movie(id="t", title="nul\x00inside"),
        Movie(id="t", title=" untrimmed"),
        Movie(id="t", title="bidi \u202e override"),
        Movie(id="t", title="ok", genres=("Drama,Comedy",)),
        Movie(id="t", title="ok", genres=("line\nbreak",)),
        Movie(id="t", title="ok", tags=("\u2066isolate",)),
    ],
)
async def test_catalog_text_rules_hold_in_the_store_itself(store: Store, bad: Movie) -> None:
    with pytest.raises(InvalidRecord):
        await store.apply_changes([Upsert(movie("fine")), Upsert(bad)])
    assert await store.head_seq() == 0 and await store.get_movies(["fine", "t"]) == {}


async def test_concurrent_deliveries_of_one_key_apply_exactly_once(store_url: str) -> None:
    stores = [await open_store(store_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(s.apply_changes([Upsert(movie("x"))], dedupe_key="same") for s in stores)
        )
    finally:
        for s in stores:
            await s.close()
    assert sum(not r.duplicate for r in results) == 1


async def test_blocking_read_wakes_on_a_write(store: Store) -> None:
    reader = asyncio.create_task(store.read_changes(after=0, block_seconds=5))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await store.apply_changes([Upsert(movie("late"))])
    entries = await reader
    assert [e.movie_id for e in entries] == ["late"]
    assert time.monotonic() - started < 2


async def test_blocking_read_times_out_empty(store: Store) -> None:
    assert await store.read_changes(after=0, block_seconds=0.2) == []


async def test_trim_moves_the_first_retained_cursor(store: Store) -> None:
    assert await store.first_retained_seq() == 1  # empty log: head + 1
    await store.apply_changes([Upsert(movie(str(i))) for i in range(10)])
    assert await store.first_retained_seq() == 1

    await store.trim_changes(keep_last=3)

    assert await store.first_retained_seq() == 8
    assert [e.seq for e in await store.read_changes(after=0)] == [8, 9, 10]
    assert await store.head_seq() == 10


async def test_epoch_is_stable_and_changes_after_a_clear(store: Store) -> None:
    before = await store.epoch()
    await store.apply_changes([Upsert(movie("a"))])
    assert await store.epoch() == before

    await store.clear()

    assert await store.epoch() != before
    assert await store.head_seq() == 0
    assert await store.count_movies() == 0


async def test_activity_is_bounded_and_newest_first(activity_store: Store) -> None:
    store = activity_store
    # the fixture bounds activity to 5 events per user
    events = [Event(movie_id=str(i), kind="watch", timestamp=1000.0 + i) for i in range(8)]
    await store.add_events("u1", events[::2])
    await store.add_events("u1", events[1::2])

    recent = await store.recent_events("u1")
    assert [e.movie_id for e in recent] == ["7", "6", "5", "4", "3"]
    assert [e.movie_id for e in await store.recent_events("u1", limit=2)] == ["7", "6"]
    assert await store.recent_events("nobody") == []


async def test_identical_events_collapse_so_imports_are_idempotent(activity_store: Store) -> None:
    store = activity_store
    rate = Event(movie_id="1", kind="rate", rating=4.5, timestamp=5.0)
    await store.add_events("u1", [rate])
    await store.add_events("u1", [rate])
    await store.add_events("u2", [rate])
    assert await store.count_events() == 2
    assert await store.count_users() == 2
    assert (await store.recent_events("u1"))[0] == rate


async def test_sample_users_counts_each_users_kept_events(activity_store: Store) -> None:
    store = activity_store
    for user, n in (("u1", 1), ("u2", 3), ("u3", 9)):
        await store.add_events(user, [Event("1", "watch", float(t)) for t in range(n)])
    assert sorted(await store.sample_users(10)) == [("u1", 1), ("u2", 3), ("u3", 5)]  # max 5
    assert len(await store.sample_users(2)) == 2


async def test_link_ids_roundtrip_and_leave_linkless_movies_as_they_were(store: Store) -> None:
    plain = movie("1", "Toy Story", year=1995)
    assert "imdb_id" not in plain.content_json()  # stored movies without links do not change
    await store.apply_changes([Upsert(movie("1", "Toy Story", imdb_id="0114709", tmdb_id="862"))])
    got = (await store.get_movies(["1"]))["1"]
    assert (got.imdb_id, got.tmdb_id) == ("0114709", "862")
    with pytest.raises(InvalidRecord, match="imdb_id"):
        await store.apply_changes([Upsert(movie("2", imdb_id="tt0114709"))])


async def test_invalid_event_is_rejected_whole(activity_store: Store) -> None:
    store = activity_store
    good = Event(movie_id="1", kind="watch", timestamp=1.0)
    bad = Event(movie_id="2", kind="rate", rating=9.0, timestamp=2.0)
    with pytest.raises(InvalidRecord, match="rating"):
        await store.add_events("u1", [good, bad])
    assert await store.recent_events("u1") == []


async def test_bulk_events_are_bounded_idempotent_and_all_or_nothing(activity_store: Store) -> None:
    store = activity_store
    # the fixture bounds activity to 5 events per user
    events = [Event(movie_id=str(i), kind="watch", timestamp=1000.0 + i) for i in range(8)]
    await store.add_events_bulk({"u1": events[::2], "u2": events[:2]})
    await store.add_events_bulk({"u1": events[1::2], "u2": events[:2], "u3": []})

    assert [e.movie_id for e in await store.recent_events("u1")] == ["7", "6", "5", "4", "3"]
    assert [e.movie_id for e in await store.recent_events("u2")] == ["1", "0"]
    assert await store.count_users() == 2 and await store.count_events() == 7

    bad = Event(movie_id="9", kind="rate", rating=9.0, timestamp=2.0)
    with pytest.raises(InvalidRecord, match="rating"):
        await store.add_events_bulk({"u4": events[:1], "u5": [bad]})
    assert await store.recent_events("u4") == [] and await store.count_users() == 2


async def test_a_history_expires_its_ttl_after_the_last_write(open_activity: OpenActivity) -> None:
    store = await open_activity(history_ttl_seconds=1.0)
    await store.add_events("kept", [Event("1", "watch", 1.0)])
    await store.add_events("gone", [Event("1", "watch", 1.0)])
    await asyncio.sleep(0.6)
    await store.add_events("kept", [Event("2", "watch", 2.0)])  # starts its TTL again
    await asyncio.sleep(0.6)

    # 1.2 s after the first writes, 0.6 s after kept's last one
    assert [e.movie_id for e in await store.recent_events("kept")] == ["2", "1"]
    assert await store.recent_events("gone") == []
    assert await store.count_users() == 1 and await store.count_events() == 2
    assert await store.sample_users(10) == [("kept", 2)]

    await asyncio.sleep(0.6)  # 1.2 s after kept's last write
    assert await store.recent_events("kept") == []
    assert await store.count_users() == 0 and await store.sample_users(10) == []
    await store.add_events("kept", [Event("3", "watch", 3.0)])  # the expired events stay gone
    assert [e.movie_id for e in await store.recent_events("kept")] == ["3"]


async def test_store_from_settings_keeps_histories_for_history_ttl_days(store_url: str) -> None:
    settings = Settings(store_url=store_url, history_ttl_days=2, _env_file=None)  # type: ignore[call-arg]
    store = await store_from_settings(settings)
    try:
        assert store.history_ttl_seconds == 2 * 24 * 3600
        await store.add_events("u", [Event("1", "watch", 1.0)])
        if store_url.startswith("redis"):
            import redis

            with redis.Redis.from_url(store_url) as client:
                ttl = client.pttl("movie-recs:user:{u}:history") / 1000
            assert 2 * 24 * 3600 - 60 < ttl <= 2 * 24 * 3600
    finally:
        await store.close()


async def test_erase_removes_the_user_and_no_one_else(activity_store: Store) -> None:
    store = activity_store
    await store.add_events_bulk(
        {
            "u1": [Event("1", "watch", 1.0), Event("2", "watch", 2.0)],
            "u2": [Event("1", "watch", 1.0)],
        }
    )

    await store.erase_user("u1")

    assert await store.recent_events("u1") == []
    assert await store.sample_users(10) == [("u2", 1)]
    assert await store.count_users() == 1 and await store.count_events() == 1
    await store.erase_user("u1")  # again, and a user never seen: nothing to do, no error
    await store.erase_user("never-seen")
    await store.add_events("u1", [Event("3", "watch", 3.0)])  # a new start, not the old history
    assert [e.movie_id for e in await store.recent_events("u1")] == ["3"]


async def test_every_valid_user_id_is_kept_listed_and_erased_as_itself(
    activity_store: Store,
) -> None:
    """Braces, percent signs and glob characters are valid in ids; Redis keys escape them."""
    store = activity_store
    ids = ["{x}", "x}1", "x}2", "%7B", "a%b", "é", "*", "a:history}", "[a]?"]
    await store.add_events_bulk({user: [Event("1", "watch", 1.0)] for user in ids})
    assert sorted(await store.sample_users(20)) == sorted((user, 1) for user in ids)
    for user in ids:
        assert len(await store.recent_events(user)) == 1
    await store.erase_user("x}1")
    assert sorted(user for user, _ in await store.sample_users(20)) == sorted(set(ids) - {"x}1"})


async def test_iter_histories_reads_every_users_whole_history(open_activity: OpenActivity) -> None:
    """What retraining reads: every unexpired history, in full, newest first, in batches;
    erased and expired users are not there."""
    store = await open_activity(history_ttl_seconds=1.0)
    await store.add_events("expired", [Event("9", "watch", 9.0)])
    await asyncio.sleep(1.1)
    # the rest written with a long lifetime (a write's purge would drop the expired row at once)
    writer = await open_activity()
    users = [f"u{i}" for i in range(7)] + ["{x}", "a%b", "é"]
    await writer.add_events_bulk(
        {
            user: [
                Event(str(j), "rate" if j % 2 else "watch", 100.0 * i + j, 4.5 if j % 2 else None)
                for j in range(i % 7 + 1)  # up to 7 events: bounded to the newest 5
            ]
            for i, user in enumerate(users)
        }
    )
    await writer.erase_user("u3")

    batches = [batch async for batch in store.iter_histories(batch_size=3)]
    read = {user: events.events() for batch in batches for user, events in batch}
    expected = {user: await store.recent_events(user) for user in users if user != "u3"}
    assert read == expected
    assert all(batch for batch in batches)  # SCAN's COUNT is a hint: Redis may give more a page
    assert sum(len(events) for events in read.values()) == await store.count_events()
    assert read["u6"][0] == Event("6", "watch", 606.0) and len(read["u6"]) == 5


async def test_memory_use_is_reported_by_part(store: Store) -> None:
    await store.add_events("u", [Event("1", "watch", 1.0)])
    parts = await store.memory_bytes()
    assert set(parts) == {"catalog"} and parts["catalog"] > 0


async def test_an_sqlite_store_with_an_activity_url_is_refused(sqlite_url: str) -> None:
    with pytest.raises(StoreError, match="activity_url is set but store_url is not a Redis"):
        await open_store(sqlite_url, activity_url="redis://127.0.0.1:1")


async def test_activity_cluster_without_an_activity_url_is_refused(redis_url: str) -> None:
    with pytest.raises(StoreError, match="activity_cluster is set but activity_url is not"):
        await open_store(redis_url, activity_cluster=True)


async def test_embedding_cache_is_keyed_by_model_and_movie_version(store: Store) -> None:
    vec = np.arange(4, dtype=np.float32)
    await store.put_embeddings("m1", {"a": (1, vec), "b": (1, vec * 2)})

    hits = await store.get_embeddings("m1", {"a": 1, "b": 2, "c": 1})
    assert set(hits) == {"a"}  # b is stale (movie changed), c was never cached
    np.testing.assert_array_equal(hits["a"], vec)
    assert await store.get_embeddings("m2", {"a": 1}) == {}


async def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="unknown store URL scheme 'postgres'"):
        await open_store("postgres://localhost/db")


async def test_unreachable_redis_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot reach Redis"):
        await open_store("redis://127.0.0.1:1/0")


async def test_unwritable_sqlite_path_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        await open_store(f"sqlite:///{blocker}/sub/store.db")


def test_redis_epoch_changes_when_the_server_restarts_with_its_data(redis_proc) -> None:  # type: ignore[no-untyped-def]
    """A restart may restore an older snapshot and hand out sequences again: resync."""
    import redis

    url = f"redis://{redis_proc.host}:{redis_proc.port}/0"

    async def epoch_and_head() -> tuple[str, int]:
        store = await open_store(url)
        try:
            return await store.epoch(), await store.head_seq()
        finally:
            await store.close()

    async def write() -> None:
        store = await open_store(url)
        await store.apply_changes([Upsert(movie("kept"))])
        await store.close()

    asyncio.run(write())
    before, head = asyncio.run(epoch_and_head())
    client = redis.Redis(host=redis_proc.host, port=redis_proc.port)
    client.save()
    client.close()
    redis_proc.stop()
    redis_proc.start()
    after, head_after = asyncio.run(epoch_and_head())
    assert head_after == head  # the data came back...
    assert after != before  # ...but readers are told to resync


async def test_a_promotion_decided_against_another_pointer_changes_nothing(store: Store) -> None:
    """A retrain's gate (or a rollback) judged against the model the pointer named then: if the
    pointer moved meanwhile, the promotion is refused whole, history included."""
    with pytest.raises(PromotionRaced) as raced:
        await store.promote_model("v2", replacing="v1")  # nothing is promoted yet
    assert raced.value.current is None
    await store.promote_model("v1", replacing=None)
    await store.promote_model("v3", "by hand")  # lands during a run that saw v1
    with pytest.raises(PromotionRaced, match="the serving model is v3, not v1"):
        await store.promote_model("v2", "retrain", replacing="v1")
    assert await store.serving_model() == "v3"
    assert [p.version for p in await store.model_history()] == ["v3", "v1"]
    moved = await store.promote_model("v2", "retrain", replacing="v3")
    assert (moved.previous, await store.serving_model()) == ("v3", "v2")


async def test_the_serving_pointer_moves_with_its_history(store: Store) -> None:
    """Every replica reads one pointer; each move names what it replaced, newest first."""
    assert await store.serving_model() is None and await store.model_history() == []
    first = await store.promote_model("v1", "retrain: passed the gate")
    second = await store.promote_model("v2")
    back = await store.promote_model("v1", "rollback")
    assert await store.serving_model() == "v1"
    history = await store.model_history()
    assert [(p.version, p.previous, p.note) for p in history] == [
        ("v1", "v2", "rollback"),
        ("v2", "v1", ""),
        ("v1", None, "retrain: passed the gate"),
    ]
    assert first.at <= second.at <= back.at and history[0] == back
    assert [p.version for p in await store.model_history(limit=1)] == ["v1"]
    await store.clear()
    assert await store.serving_model() is None

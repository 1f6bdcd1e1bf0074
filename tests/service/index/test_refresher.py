"""The refresher against a real store (both backends) and the real tiny towers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.index import snapshot_file
from service.index.live import IndexParams
from service.index.refresher import CatalogLost, Refresher
from service.index.snapshot_file import Identity, SnapshotDir
from service.index.titles import built
from service.metrics import Metrics
from service.store import Delete, Movie, Store, Upsert
from service.towers import Towers

pytestmark = pytest.mark.anyio
PARAMS = IndexParams()


def movie(mid: str, title: str = "Film", genres: tuple[str, ...] = ("Drama",)) -> Movie:
    return Movie(id=mid, title=title, genres=genres, year=2001)


async def catch_up(refresher: Refresher) -> None:
    """In small steps, so tailing runs several batches; bounded, so a bug fails, not hangs."""
    await asyncio.wait_for(refresher.catch_up(limit=7), 60)


def observations(metrics: Metrics) -> float:
    """How many catalog-change freshness values the histogram has seen."""
    samples = next(iter(metrics.freshness_seconds.collect())).samples
    return float(next(s.value for s in samples if s.name.endswith("_count")))


async def live_ids(store: Store) -> set[str]:
    return {m.id async for batch in store.iter_movies() for m in batch}


async def test_startup_then_tailing_tracks_upserts_updates_and_deletes(
    store: Store, tiny_towers: Towers
) -> None:
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(20)])
    refresher = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(refresher)
    assert (
        refresher.live is not None and len(refresher.live) == 20 and refresher.index_version == 20
    )

    await store.apply_changes([Upsert(movie("new")), Delete("3"), Upsert(movie("4", "Changed"))])
    await catch_up(refresher)

    assert set(refresher.live.ids()) == await live_ids(store)
    assert refresher.live.get("4")[1].title == "Changed"  # type: ignore[index]
    assert refresher.index_version == await store.head_seq()
    assert observations(metrics) == 3  # one per tailed change-log entry


async def test_embeddings_are_cached_by_model_and_movie_version(
    store: Store, tiny_towers: Towers
) -> None:
    await store.apply_changes([Upsert(movie("a"))])
    refresher = Refresher(store, tiny_towers, PARAMS, Metrics())
    await catch_up(refresher)
    cached = await store.get_embeddings(tiny_towers.version, {"a": 1})
    assert set(cached) == {"a"}
    vector = refresher.live.get("a")[0]  # type: ignore[union-attr, index]
    assert float(cached["a"] @ vector) == pytest.approx(1.0, abs=1e-5)


async def test_an_emptied_store_changes_epoch_and_forces_a_resync(
    store: Store, tiny_towers: Towers
) -> None:
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(5)])
    refresher = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(refresher)

    await store.clear()  # what a Redis restart without persistence looks like
    await store.apply_changes([Upsert(movie(f"after-{i}")) for i in range(3)])
    await catch_up(refresher)

    assert set(refresher.live.ids()) == {f"after-{i}" for i in range(3)}  # type: ignore[union-attr]
    assert metrics.resyncs.labels("epoch changed")._value.get() == 1


@pytest.mark.parametrize("left", [0, 1])
async def test_a_store_that_lost_its_catalog_never_replaces_the_index(
    store: Store, tiny_towers: Towers, left: int
) -> None:
    """Empty (or next to empty) after a restart without data: the last good index stays, says
    so, and the resync happens once the catalog is back (a re-import)."""
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(6)])
    refresher = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(refresher)

    await store.clear()
    await store.apply_changes([Upsert(movie("stray"))] * left)
    for _ in range(2):
        with pytest.raises(CatalogLost):
            await refresher.step()
    assert set(refresher.live.ids()) == {str(i) for i in range(6)}  # type: ignore[union-attr]
    assert refresher.caught_up and refresher.catalog_lost is not None
    assert metrics.catalog_lost._value.get() == 1 and metrics.resyncs_refused._value.get() == 2

    await store.apply_changes([Upsert(movie(str(i))) for i in range(6)])  # re-imported
    await catch_up(refresher)
    assert set(refresher.live.ids()) == await live_ids(store)  # type: ignore[union-attr]
    assert refresher.catalog_lost is None and metrics.catalog_lost._value.get() == 0


async def test_a_cursor_trimmed_away_forces_a_resync(store: Store, tiny_towers: Towers) -> None:
    metrics = Metrics()
    await store.apply_changes([Upsert(movie("0"))])
    paused = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(paused)

    await store.apply_changes([Upsert(movie(str(i))) for i in range(1, 30)])
    await store.apply_changes([Delete("0")])
    await store.trim_changes(keep_last=5)
    await catch_up(paused)

    assert set(paused.live.ids()) == await live_ids(store)  # type: ignore[union-attr]
    assert metrics.resyncs.labels("change log trimmed past cursor")._value.get() == 1
    assert paused.caught_up  # catch_up goes on past the resync (readiness off) to the head


async def test_deletes_trimmed_away_shrink_the_index_however_many(
    store: Store, tiny_towers: Towers
) -> None:
    """Most of the catalog deleted through the log while a replica lagged, then the log trimmed
    past it: the same store moved forward, so the much smaller catalog is adopted, not refused
    as lost (found by test_convergence)."""
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(6)])
    paused = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(paused)

    await store.apply_changes([Delete(str(i)) for i in range(5)])
    await store.trim_changes(keep_last=1)
    await catch_up(paused)

    assert set(paused.live.ids()) == {"5"}  # type: ignore[union-attr]
    assert paused.catalog_lost is None and metrics.resyncs_refused._value.get() == 0


async def test_readiness_is_false_until_caught_up(store: Store, tiny_towers: Towers) -> None:
    await store.apply_changes([Upsert(movie(str(i))) for i in range(10)])
    refresher = Refresher(store, tiny_towers, PARAMS, Metrics())
    await refresher.step()
    assert refresher.caught_up
    await store.apply_changes([Upsert(movie(str(i))) for i in range(10, 30)])
    await refresher.step(limit=5)
    assert not refresher.caught_up and refresher.head == 30


async def test_compaction_folds_the_delta_and_keeps_later_changes(
    store: Store, tiny_towers: Towers
) -> None:
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(10)])
    refresher = Refresher(store, tiny_towers, PARAMS, metrics)
    await catch_up(refresher)
    await store.apply_changes([Upsert(movie("x")), Delete("1")])
    await catch_up(refresher)
    assert refresher.live.pending > 0  # type: ignore[union-attr]

    await refresher.compact()

    assert refresher.live.pending == 0  # type: ignore[union-attr]
    assert set(refresher.live.ids()) == await live_ids(store)  # type: ignore[union-attr]


async def published(metrics: Metrics, count: int = 1) -> None:
    """Wait (bounded) until this replica wrote `count` snapshots; they are written in a thread."""
    for _ in range(500):
        if metrics.snapshots_published.labels("ok")._value.get() >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no snapshot was written")


async def test_a_replica_starts_from_a_snapshot_and_tails_the_log_after_it(
    store: Store, tiny_towers: Towers, tmp_path: Path
) -> None:
    await store.apply_changes([Upsert(movie(str(i))) for i in range(20)])
    first = Metrics()
    await catch_up(Refresher(store, tiny_towers, PARAMS, first, snapshots=SnapshotDir(tmp_path)))
    await published(first)
    await store.apply_changes([Upsert(movie("new")), Delete("3"), Upsert(movie("4", "Changed"))])

    metrics = Metrics()
    second = Refresher(store, tiny_towers, PARAMS, metrics, snapshots=SnapshotDir(tmp_path))
    await catch_up(second)

    assert metrics.snapshot_loads.labels("loaded")._value.get() == 1
    assert metrics.resyncs.labels("startup")._value.get() == 0  # no full sync
    assert second.started_from is not None and second.started_from.startswith("snapshot")
    assert set(second.live.ids()) == await live_ids(store)  # type: ignore[union-attr]
    assert second.live is not None
    assert second.live.get("4")[1].title == "Changed"  # type: ignore[index]
    assert second.index_version == await store.head_seq()
    assert built(second.live.base) is not None  # its title index came with it, not rebuilt


async def test_a_snapshot_older_than_the_retained_log_falls_back_to_a_full_sync(
    store: Store, tiny_towers: Towers, tmp_path: Path
) -> None:
    await store.apply_changes([Upsert(movie(str(i))) for i in range(5)])
    first = Metrics()
    await catch_up(Refresher(store, tiny_towers, PARAMS, first, snapshots=SnapshotDir(tmp_path)))
    await published(first)
    await store.apply_changes([Upsert(movie(f"later-{i}")) for i in range(30)])
    await store.apply_changes([Delete("0")])
    await store.trim_changes(keep_last=5)

    metrics = Metrics()
    second = Refresher(store, tiny_towers, PARAMS, metrics, snapshots=SnapshotDir(tmp_path))
    await catch_up(second)

    assert metrics.snapshot_loads.labels("stale")._value.get() == 1
    assert metrics.resyncs.labels("startup")._value.get() == 1
    assert set(second.live.ids()) == await live_ids(store)  # type: ignore[union-attr]
    await published(metrics)  # and the full sync wrote a fresh snapshot for the next one


async def test_a_snapshot_of_an_older_format_falls_back_to_a_full_sync(
    store: Store, tiny_towers: Towers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade that changed the file format: the old file is refused, not misread, and
    the first new replica writes one the next replica starts from (same sequence as the old)."""
    await store.apply_changes([Upsert(movie(str(i))) for i in range(5)])
    old = Metrics()
    with monkeypatch.context() as patch:
        patch.setattr(snapshot_file, "FORMAT", snapshot_file.FORMAT - 1)
        await catch_up(Refresher(store, tiny_towers, PARAMS, old, snapshots=SnapshotDir(tmp_path)))
        await published(old)

    upgraded = Metrics()
    first = Refresher(store, tiny_towers, PARAMS, upgraded, snapshots=SnapshotDir(tmp_path))
    await catch_up(first)
    assert upgraded.snapshot_loads.labels("foreign")._value.get() == 1
    assert first.started_from == "full sync"
    assert set(first.live.ids()) == await live_ids(store)  # type: ignore[union-attr]
    await published(upgraded)

    metrics = Metrics()
    second = Refresher(store, tiny_towers, PARAMS, metrics, snapshots=SnapshotDir(tmp_path))
    await catch_up(second)
    assert metrics.snapshot_loads.labels("loaded")._value.get() == 1
    assert set(second.live.ids()) == await live_ids(store)  # type: ignore[union-attr]


async def test_a_compaction_writes_a_snapshot_a_new_replica_starts_from(
    store: Store, tiny_towers: Towers, tmp_path: Path
) -> None:
    metrics = Metrics()
    await store.apply_changes([Upsert(movie(str(i))) for i in range(10)])
    refresher = Refresher(store, tiny_towers, PARAMS, metrics, snapshots=SnapshotDir(tmp_path))
    await catch_up(refresher)
    await published(metrics)
    await store.apply_changes([Upsert(movie("x")), Delete("1")])
    await catch_up(refresher)
    await refresher.compact()
    await published(metrics, 2)

    assert (
        SnapshotDir(tmp_path).newest_seq(Identity(tiny_towers.version, await store.epoch(), PARAMS))
        == await store.head_seq()
    )


async def test_a_promoted_model_reindexes_the_served_movies_with_its_own_vectors(
    store: Store, tiny_towers: Towers, other_tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The swap takes the served index's movies and columns, each vector from the store's cache
    at the movie's version (what retrain leaves) or else the new movie tower, then catches up
    with the log: a movie changed, added and deleted while it built is served as the store has
    it, under the new model."""
    from embeddings.artifacts import resolve_model_dir
    from embeddings.registry import open_registry
    from service.index.vectors import vectors_for
    from service.model_source import ModelSource

    await store.apply_changes([Upsert(movie(str(i), f"Film {i}")) for i in range(40)])
    refresher = Refresher(
        store, tiny_towers, PARAMS, Metrics(), models=ModelSource(str(tmp_path / "r"), tmp_path)
    )
    await catch_up(refresher)
    other = open_registry(tmp_path / "r").publish(resolve_model_dir(other_tiny_model_dir))
    source = refresher.models
    assert source is not None
    new_towers = source.load(other)
    # Half the catalog cached under the new model, as a retrain's cut leaves it; one entry is
    # at an older movie version, so it must not be used.
    first = await store.get_movies([str(i) for i in range(20)])
    await vectors_for(store, new_towers, list(first.values()))
    await store.apply_changes([Upsert(movie("5", "Changed"))])
    await catch_up(refresher)

    await store.promote_model(other)
    refresher.model_poll_seconds = 0.0
    await refresher.follow_model()  # starts building
    await store.apply_changes([Upsert(movie("new", "Arrived")), Delete("7")])
    preparing = refresher._preparing
    assert preparing is not None
    await asyncio.wait_for(asyncio.shield(preparing), 60)
    await refresher.follow_model()  # catches up and swaps

    live = refresher.live
    assert live is not None and refresher.towers.version == other
    assert set(live.ids()) == await live_ids(store)
    assert refresher.index_version == await store.head_seq()
    current = await store.get_movies(list(live.ids()))
    expected = new_towers.embed_movies([current[mid] for mid in sorted(current)])
    for row, mid in enumerate(sorted(current)):
        vector, meta = live.get(mid)  # type: ignore[misc]
        assert meta.title == current[mid].title
        assert float(vector @ expected[row]) == pytest.approx(1.0, abs=1e-4), mid


async def test_a_swap_with_nothing_pending_shares_the_served_id_map(
    store: Store, tiny_towers: Towers, other_tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Same movies in the same rows: the new base keeps the served one's id list and map (at
    1M, a million objects not built on the swap nor freed when the old index goes), with the
    new model's vectors."""
    from embeddings.artifacts import resolve_model_dir
    from embeddings.registry import open_registry
    from service.model_source import ModelSource

    await store.apply_changes([Upsert(movie(str(i), f"Film {i}")) for i in range(30)])
    source = ModelSource(str(tmp_path / "r"), tmp_path)
    refresher = Refresher(store, tiny_towers, PARAMS, Metrics(), models=source)
    await catch_up(refresher)
    served = refresher.live
    assert served is not None and not served.pending
    other = open_registry(tmp_path / "r").publish(resolve_model_dir(other_tiny_model_dir))
    await store.promote_model(other)
    refresher.model_poll_seconds = 0.0
    await refresher.follow_model()
    preparing = refresher._preparing
    assert preparing is not None
    await asyncio.wait_for(asyncio.shield(preparing), 60)
    await refresher.follow_model()

    swapped = refresher.live
    assert swapped is not None and refresher.towers.version == other
    assert swapped.base.ids is served.base.ids and swapped.base.row_of is served.base.row_of
    fresh = source.load(other).embed_movies(list((await store.get_movies(["7"])).values()))
    assert float(swapped.get("7")[0] @ fresh[0]) == pytest.approx(1.0, abs=1e-4)  # type: ignore[index]


async def test_a_compacted_base_is_out_of_the_collectors_generations(
    store: Store, tiny_towers: Towers
) -> None:
    """A full collection walks every object in the generations, holding the GIL meanwhile:
    the base a compaction (or resync, or model swap) publishes must not be among them."""
    import gc

    await store.apply_changes([Upsert(movie(str(i))) for i in range(10)])
    refresher = Refresher(store, tiny_towers, PARAMS, Metrics())
    await catch_up(refresher)
    await store.apply_changes([Upsert(movie("x"))])
    await catch_up(refresher)
    await refresher.compact()
    base = refresher.live.base  # type: ignore[union-attr]
    collected = {id(o) for o in gc.get_objects()}
    assert id(base) not in collected and id(base.ids) not in collected
    gc.unfreeze()  # the test process's other tests keep their collector as it was

"""The dataset at a cut, on both backends: what it keeps, how events become ratings, and a catalog
read while webhooks land."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from embeddings.data import DataError
from embeddings.weights import event_weight, rating_weights
from service.learning.dataset import WATCH_RATING, CutError, read_catalog, read_dataset
from service.store import Delete, Event, Movie, MovieChange, Store, Upsert

pytestmark = pytest.mark.anyio
CUT_TIME = 500.0


def movie(movie_id: str, title: str = "A Movie") -> Movie:
    return Movie(id=movie_id, title=title, genres=("Drama",), year=1999, tags=("slow",))


async def test_the_cut_keeps_each_users_latest_event_of_a_catalog_movie_before_t(
    store: Store,
) -> None:
    await store.apply_changes([Upsert(movie("b")), Upsert(movie("a")), Upsert(movie("c"))])
    await store.apply_changes([Delete("c")])
    await store.add_events_bulk(
        {
            "u1": [
                Event("a", "watch", 10.0),
                Event("zz", "watch", 15.0),  # never in the catalog
                Event("b", "rate", 20.0, 3.5),
                Event("a", "rate", 30.0, 4.0),  # supersedes the watch of a
                Event("b", "watch", 1000.0),  # after the cut: the rating of b stands
            ],
            "u2": [Event("c", "watch", 5.0)],  # a deleted movie only
            "u3": [Event("b", "watch", 5.5)],
        }
    )

    read = await read_dataset(store, clock=lambda: CUT_TIME, catalog_batch=1, history_batch=1)

    dataset, cut = read.dataset, read.cut
    assert [(m.id, m.title, m.year, m.genres, m.tags) for m in dataset.movies] == [
        ("a", "A Movie", 1999, ("Drama",), ("slow",)),
        ("b", "A Movie", 1999, ("Drama",), ("slow",)),
    ]
    ratings = dataset.ratings
    rows = list(
        zip(
            ratings.user_ids.tolist(),
            ratings.movie_ids.tolist(),
            ratings.ratings.tolist(),
            ratings.timestamps.tolist(),
            strict=True,
        )
    )
    assert rows == [("u1", "b", 3.5, 20), ("u1", "a", 4.0, 30), ("u3", "b", 5.0, 5)]  # a watch: 5
    assert dict(dataset.report) == {
        "events_after_cut": 1,
        "events_unknown_movie": 2,
        "events_superseded": 1,
        "events_watch_as_5_stars": 1,
        "users_without_events": 1,
    }
    assert (cut.sequence, cut.time, cut.movies, cut.users, cut.events) == (4, 500.0, 2, 2, 3)
    assert cut.sequence == await store.head_seq() and cut.epoch == await store.epoch()
    assert read.versions == {"a": 1, "b": 1}
    assert cut.to_manifest()["time"] == "1970-01-01T00:08:20+00:00"


def test_a_watch_trains_with_the_weight_the_service_gives_it() -> None:
    assert rating_weights(np.array([WATCH_RATING]))[0] == event_weight("watch") == 1.0


async def test_the_same_content_gives_the_same_dataset_whatever_the_write_order(
    store: Store,
) -> None:
    users = [f"u{i}" for i in range(12)]
    await store.apply_changes([Upsert(movie(str(i))) for i in range(5)])
    for user in reversed(users):
        await store.add_events(user, [Event(str(i % 5), "watch", float(i)) for i in range(3)])
    first = (await read_dataset(store, history_batch=5)).dataset
    second = (await read_dataset(store, history_batch=7)).dataset
    assert first.ratings.users == sorted(users)
    assert first.content_hash() == second.content_hash()


async def moving_scan(store: Store, changes: list[list[MovieChange]]) -> list[int]:
    """Make `store.iter_movies` apply the next of `changes` after its first batch, as a webhook
    landing during the scan would; returns the list the scans are counted in."""
    scans: list[int] = []
    scan = store.iter_movies

    async def iter_movies(batch_size: int = 1000) -> AsyncIterator[list[Movie]]:
        scans.append(batch_size)
        first = True
        async for batch in scan(batch_size):
            yield batch
            if first and changes:
                await store.apply_changes(changes.pop(0))
            first = False

    store.iter_movies = iter_movies  # type: ignore[method-assign]
    return scans


async def test_a_change_during_the_catalog_scan_is_caught_up_from_the_log(store: Store) -> None:
    await store.apply_changes([Upsert(movie(movie_id)) for movie_id in "abcd"])
    scans = await moving_scan(
        store, [[Upsert(movie("a", "A, renamed")), Delete("d"), Upsert(movie("e"))]]
    )

    catalog, sequence, catch_ups = await read_catalog(store, batch_size=1)

    assert sequence == await store.head_seq() == 7 and catch_ups == 1 and len(scans) == 1
    assert {m.id: (m.title, m.version) for m in catalog.values()} == {
        "a": ("A, renamed", 2),
        "b": ("A Movie", 1),
        "c": ("A Movie", 1),
        "e": ("A Movie", 1),
    }


async def test_a_log_trimmed_during_the_scan_means_scanning_again(store: Store) -> None:
    await store.apply_changes([Upsert(movie(movie_id)) for movie_id in "abc"])
    scans = await moving_scan(store, [[Delete("a"), Upsert(movie("z"))]])
    trim = store.read_changes

    async def read_after_trim(after: int, limit: int = 1000, block_seconds: float = 0.0):  # type: ignore[no-untyped-def]
        await store.trim_changes(1)  # the log keeps only the last entry: (3, 5] is not whole
        return await trim(after, limit, block_seconds)

    store.read_changes = read_after_trim  # type: ignore[method-assign]
    catalog, sequence, _ = await read_catalog(store, batch_size=1)

    assert len(scans) == 2 and sequence == 5
    assert sorted(catalog) == ["b", "c", "z"]


async def test_a_catalog_that_never_holds_still_is_no_cut(store: Store) -> None:
    await store.apply_changes([Upsert(movie("a"))])
    changes: list[list[MovieChange]] = [[Upsert(movie("a", f"title {i}"))] for i in range(20)]
    await moving_scan(store, changes)
    get_movies = store.get_movies

    async def moving_get(ids):  # type: ignore[no-untyped-def]
        found = await get_movies(ids)
        await store.apply_changes(changes.pop(0))  # another change lands every time
        return found

    store.get_movies = moving_get  # type: ignore[method-assign]
    with pytest.raises(CutError, match="changed during each of 5 re-reads"):
        await read_catalog(store, batch_size=1)


async def test_a_store_without_usable_events_is_a_data_error(store: Store) -> None:
    with pytest.raises(DataError, match="catalog is empty"):
        await read_dataset(store)
    await store.apply_changes([Upsert(movie("a"))])
    await store.add_events("u1", [Event("a", "watch", 10_000.0)])
    with pytest.raises(DataError, match="no event of a catalog movie"):
        await read_dataset(store, clock=lambda: CUT_TIME)

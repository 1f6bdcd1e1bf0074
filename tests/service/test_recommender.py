"""The request path on a hand-made catalog: a real live of five movies on two axes, and a
user tower that averages the history (what the recommender does with it is under test, not the
model's quality)."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.columns import MetaTable
from service.index.live import LiveIndex, MovieMeta, build_live_index
from service.index.view import Serving
from service.recommender import Filters, Recommender, UnknownGenres
from service.store import Event
from service.store.history import History

MOVIES = {  # id: (vector, title, genres, year)
    "a1": ((1.0, 0.0), "Action One", ("Action",), 1990),
    "a2": ((0.95, 0.3), "Action Two", ("Action",), 2010),
    "a3": ((0.9, -0.4), "Action Three", ("Action", "Comedy"), 2020),
    "r1": ((0.0, 1.0), "Romance One", ("Romance",), 1995),
    "r2": ((0.3, 0.95), "Romance Two", ("Romance",), None),
}
POPULAR = [("r2", 1.0), ("a1", 0.8), ("r1", 0.5)]


class FixedIndex:
    """A published index that never changes (the `IndexView` the recommender reads)."""

    def __init__(self, live: LiveIndex, towers: object) -> None:
        self.live = live
        self.towers = towers
        self.serving = Serving(live, towers)  # type: ignore[arg-type]
        self.model_error: str | None = None
        self.index_version = live.index_version
        self.head = live.index_version
        self.caught_up = True
        self.store_error: str | None = None
        self.catalog_lost: str | None = None

    async def wait_for(self, seq: int, within: float) -> bool:
        return self.index_version >= seq


class MeanTower:
    """Stands in for the trained user tower: the unit mean of the (weighted) history."""

    version = "test-model"
    history_length = 3
    popular = POPULAR

    def embed_user(self, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
        mean = (history * np.maximum(weights, 0.1)[:, None]).sum(axis=0)
        return np.asarray(mean / np.linalg.norm(mean), dtype=np.float32)


@pytest.fixture
def recommender() -> Recommender:
    ids = list(MOVIES)
    vectors = np.array([MOVIES[i][0] for i in ids], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    meta = [MovieMeta(t, g, y) for _, t, g, y in MOVIES.values()]
    index = FixedIndex(build_live_index(ids, vectors, meta, index_version=42), MeanTower())
    return Recommender(index)  # type: ignore[arg-type]


def watched(*movie_ids: str) -> History:
    """Newest first, as the store returns them."""
    return History.of([Event(m, "watch", 1000.0 - i) for i, m in enumerate(movie_ids)])


def test_history_leads_to_its_neighbours_and_says_why(recommender: Recommender) -> None:
    result = recommender.recommend(watched("a1"), k=2)
    assert (result.strategy, result.index_version, result.history_length) == (
        "personalized",
        42,
        1,
    )
    assert [i.movie_id for i in result.items] == ["a2", "a3"]  # a1 itself is seen
    assert all(i.because == ("a1", "Action One") for i in result.items)


def test_seen_movies_come_back_only_when_asked(recommender: Recommender) -> None:
    assert recommender.recommend(watched("a1"), k=1, exclude_seen=False).items[0].movie_id == "a1"


def test_because_names_the_nearest_history_movie(recommender: Recommender) -> None:
    result = recommender.recommend(watched("a1", "r1"), k=3)
    because = {i.movie_id: i.because for i in result.items}
    assert because["a2"] == ("a1", "Action One")
    assert because["r2"] == ("r1", "Romance One")


def test_filters_apply_to_personal_and_popular_answers(recommender: Recommender) -> None:
    comedy = Filters(genres=frozenset({"Comedy"}))
    assert [i.movie_id for i in recommender.recommend(watched("r1"), 5, comedy).items] == ["a3"]
    recent = Filters(year_min=2000)  # a movie without a year fails a year filter
    assert [i.movie_id for i in recommender.recommend(watched("r1"), 5, recent).items] == [
        "a2",
        "a3",
    ]
    old = Filters(year_max=1992)
    assert [i.movie_id for i in recommender.recommend(watched(), 5, old).items] == ["a1"]


def test_no_usable_history_falls_back_to_popular_in_order(recommender: Recommender) -> None:
    for history in (watched(), watched("not-in-the-index")):
        result = recommender.recommend(history, k=2)
        assert result.strategy == "popular" and result.history_length == 0
        assert [(i.movie_id, i.score) for i in result.items] == [("r2", 1.0), ("a1", 0.8)]


def test_history_is_deduplicated_and_capped_at_the_towers_length(
    recommender: Recommender,
) -> None:
    repeated = recommender.recommend(watched("a1", "a1", "gone", "a2"), k=5)
    assert repeated.history_length == 2  # the repeat and the unknown id skipped
    long = recommender.recommend(watched("a1", "a2", "r1", "r2"), k=5)
    assert long.history_length == 3  # the newest three


def test_similar_excludes_the_movie_itself(recommender: Recommender) -> None:
    found = recommender.similar("a1", 2)
    assert found is not None
    assert [i.movie_id for i in found[1]] == ["a2", "a3"]
    assert recommender.similar("missing", 2) is None


def test_the_filter_on_columns_agrees_with_the_one_on_a_movie() -> None:
    genres = [(), ("Drama",), ("Comedy", "Drama"), ("Horror",)]
    metas = [
        MovieMeta(f"m{i}", genres[i % 4], None if i % 5 == 0 else 1980 + i % 40) for i in range(200)
    ]
    table = MetaTable.of(metas)
    rows = np.arange(len(metas))[::-1]
    for filters in (
        Filters(),
        Filters(genres=frozenset({"Drama"})),
        Filters(genres=frozenset({"Comedy", "Horror"}), year_min=1990),
        Filters(year_max=2000),
        Filters(year_min=1995, year_max=2005),
        Filters(genres=frozenset({"Western"})),
    ):
        expected = [filters.admits(metas[row]) for row in rows]
        assert filters.mask(table, rows).tolist() == expected


def test_a_filter_stays_on_the_loop_once_its_few_rows_are_known(recommender: Recommender) -> None:
    """`quick` decides loop or worker thread: unfiltered and known-few filters are quick; a
    filter whose rows are not found yet is not (finding them scans every row's columns)."""
    romance = Filters(frozenset({"Romance"}))
    assert recommender.quick(Filters()) and not recommender.quick(romance)
    recommender.recommend(watched("r1"), 1, romance)
    assert recommender.quick(romance)
    with pytest.raises(UnknownGenres, match="known: Action, Comedy, Romance"):
        recommender.check(Filters(frozenset({"Horror"})))

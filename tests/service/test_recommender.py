"""The request path on a hand-made catalog: a real live of five movies on two axes, and a
user tower that averages the history (what the recommender does with it is under test, not the
model's quality); then dislikes, reasons and diversity on the real (tiny) trained model over the
bundled catalog."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from embeddings.data import BUNDLED_DATA, load_dataset
from service.index.columns import MetaTable
from service.index.live import LiveIndex, MovieMeta, build_live_index
from service.index.view import Serving
from service.recommender import Filters, Item, Recommender, UnknownGenres
from service.store import Event
from service.store.history import History
from service.towers import Towers

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


def rated(*pairs: tuple[str, float]) -> History:
    """(movie, rating) pairs, newest first."""
    return History.of([Event(m, "rate", 1000.0 - i, r) for i, (m, r) in enumerate(pairs)])


def test_because_names_only_a_liked_or_watched_movie(recommender: Recommender) -> None:
    """A hand-made history: a1 rated 1 (a dislike), a2 rated 2.5 (lukewarm), r1 watched. No
    item is "because" of a1 or a2, though a3 is nearest to them; with no liked movie at all
    the list says "popular with people like you" instead of a reason the user would reject."""
    history = History.of(
        [
            Event("a1", "rate", 3.0, 1.0),
            Event("a2", "rate", 2.0, 2.5),
            Event("r1", "watch", 1.0),
        ]
    )
    result = recommender.recommend(history, k=2)
    assert result.strategy == "personalized" and result.history_length == 2  # a1 not read
    assert {i.because for i in result.items} == {("r1", "Romance One")}
    assert all(i.reason == "because" for i in result.items)
    lukewarm = recommender.recommend(rated(("a2", 2.5), ("r1", 3.0)), k=2)
    assert [i.because for i in lukewarm.items] == [("r1", "Romance One")] * 2
    none_fits = recommender.recommend(rated(("a2", 2.5)), k=2)
    assert none_fits.strategy == "personalized"
    assert [(i.because, i.reason) for i in none_fits.items] == [(None, "people_like_you")] * 2


def test_only_dislikes_start_from_the_popular_list_pushed_away(recommender: Recommender) -> None:
    """POPULAR is r2, a1, r1: disliking r1 (seen) drops it and pushes its neighbour r2 below
    a1; the disliked movie is never a reason."""
    result = recommender.recommend(History.of([Event("r1", "dislike", 1.0)]), k=2)
    assert result.strategy == "popular" and result.history_length == 0
    assert [i.movie_id for i in result.items] == ["a1", "r2"]
    assert all(i.because is None and i.reason == "popular" for i in result.items)


# --- on the real (tiny) trained model over the bundled catalog --------------------------------
@pytest.fixture(scope="module")
def catalog(tiny_towers: Towers) -> tuple[Recommender, dict[str, np.ndarray]]:
    """The Recommender over all 9,742 bundled movies with the vectors training exported."""
    dataset = load_dataset(BUNDLED_DATA)
    exported = np.load(tiny_towers.directory / "movie_vectors.npy")
    ids = json.loads((tiny_towers.directory / "movie_ids.json").read_text("utf-8"))
    row = {str(m): i for i, m in enumerate(ids)}
    movie_ids = [m.id for m in dataset.movies]
    vectors = np.ascontiguousarray(exported[[row[m] for m in movie_ids]], np.float32)
    meta = [MovieMeta(m.title, m.genres, m.year) for m in dataset.movies]
    live = build_live_index(movie_ids, vectors, meta, index_version=1)
    recommender = Recommender(FixedIndex(live, tiny_towers))  # type: ignore[arg-type]
    return recommender, dict(zip(movie_ids, vectors, strict=True))


def similarity(items: list[Item], to: np.ndarray, vectors: dict[str, np.ndarray]) -> float:
    return float(np.mean([vectors[i.movie_id] @ to for i in items]))


ACTION = ["589", "1240", "1200", "2571", "1036", "1127"]  # T2, Terminator, Aliens, Matrix, ...


def test_one_disliked_movie_leads_away_from_it_compared_with_the_popular_list(
    catalog: tuple[Recommender, dict[str, np.ndarray]],
) -> None:
    """The issue's case (a history of only "RoboCop, 1 star"), and the ten most popular movies
    each disliked alone: the top 10's mean similarity to the disliked movie is below the
    popular list's (which is what a history without it gets)."""
    recommender, vectors = catalog
    towers = recommender.serving().towers
    for movie_id in ["2985", *[m for m, _ in towers.popular[:10]]]:
        disliked = vectors[movie_id]
        popular = [m for m, _ in towers.popular if m != movie_id][:10]
        popular_similarity = float(np.mean([vectors[m] @ disliked for m in popular]))
        for history in (rated((movie_id, 1.0)), History.of([Event(movie_id, "dislike", 1.0)])):
            result = recommender.recommend(history, k=10)
            assert movie_id not in {i.movie_id for i in result.items}  # seen
            assert all(i.because is None for i in result.items)
            assert similarity(result.items, disliked, vectors) < popular_similarity, movie_id


def test_a_disliked_movies_neighbours_drop_in_a_mixed_history(
    catalog: tuple[Recommender, dict[str, np.ndarray]],
) -> None:
    """Action movies liked; then the movie this history recommends first is disliked: its
    nearest neighbours leave the top 10 and the list moves away from it. Rated 1 star it did
    the opposite before (a low rating was a small positive weight)."""
    recommender, vectors = catalog
    liked = rated(*[(m, 5.0) for m in ACTION])
    before = recommender.recommend(liked, k=10).items
    top = before[0].movie_id
    nearest = {i.movie_id for i in recommender.similar(top, 10)[1]}  # type: ignore[index]
    after_lists = [
        recommender.recommend(rated((top, 1.0), *[(m, 5.0) for m in ACTION]), k=10).items,
        recommender.recommend(
            History.of(
                [Event(top, "dislike", 2000.0)]
                + [Event(m, "rate", 1000.0 - i, 5.0) for i, m in enumerate(ACTION)]
            ),
            k=10,
        ).items,
    ]
    for after in after_lists:
        assert top not in {i.movie_id for i in after}
        assert len(nearest & {i.movie_id for i in after}) < len(
            nearest & {i.movie_id for i in before}
        )
        assert similarity(after, vectors[top], vectors) < similarity(
            before[1:], vectors[top], vectors
        )
        assert all(i.because is not None and i.because[0] != top for i in after)


def test_diversity_zero_is_the_ranking_by_score_and_more_spreads_the_list(
    catalog: tuple[Recommender, dict[str, np.ndarray]],
) -> None:
    """diversity=0 is the plain ranking (every movie scored against the user vector, seen
    ones out); higher values give lists whose movies are less alike, still k unseen ones."""
    recommender, vectors = catalog
    history = rated(*[(m, 4.0) for m in ACTION])
    towers = recommender.serving().towers
    user = towers.embed_user(np.stack([vectors[m] for m in ACTION]), history.weights())
    ids = list(vectors)
    scores = np.stack([vectors[m] for m in ids]) @ user
    expected = [ids[i] for i in np.argsort(-scores) if ids[i] not in ACTION][:10]
    plain = recommender.recommend(history, k=10)
    assert [i.movie_id for i in plain.items] == expected
    assert recommender.recommend(history, k=10, diversity=0.0) == plain

    def spread(items: list[Item]) -> float:
        matrix = np.stack([vectors[i.movie_id] for i in items])
        return float((1 - matrix @ matrix.T)[np.triu_indices(len(items), 1)].mean())

    varied = [recommender.recommend(history, k=10, diversity=d).items for d in (0.3, 1.0)]
    assert spread(plain.items) < spread(varied[0]) < spread(varied[1])
    for items in varied:
        assert len(items) == 10 and not set(ACTION) & {i.movie_id for i in items}


def test_a_genre_cap_bounds_each_genre_in_the_list(
    catalog: tuple[Recommender, dict[str, np.ndarray]],
) -> None:
    recommender, _ = catalog
    history = rated(*[(m, 4.0) for m in ACTION])
    plain = recommender.recommend(history, k=10).items
    assert max(Counter(g for i in plain for g in i.meta.genres).values()) > 3
    capped = recommender.recommend(history, k=10, max_per_genre=3).items
    assert len(capped) == 10
    assert max(Counter(g for i in capped for g in i.meta.genres).values()) <= 3

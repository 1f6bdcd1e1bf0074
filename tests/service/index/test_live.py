"""The index: exact and ANN search, delta + tombstones, compaction, concurrent readers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.index.live import BaseIndex, IndexParams, LiveIndex, MovieMeta, build_live_index
from service.recommender import Filters


def unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture
def catalog() -> tuple[list[str], np.ndarray, list[MovieMeta]]:
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(500, 16)))
    ids = [f"m{i}" for i in range(500)]
    meta = [
        MovieMeta(f"T{i}", ("Drama",) if i % 2 else ("Comedy",), 1950 + i % 60) for i in range(500)
    ]
    return ids, vectors, meta


def exact(vectors: np.ndarray, ids: list[str], q: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-(vectors @ q), kind="stable")[:k]
    return [ids[i] for i in order]


def test_flat_search_is_exact(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    live = build_live_index(ids, vectors, meta, index_version=7)
    q = vectors[3]
    assert [m for m, _, _ in live.search(q, 10)] == exact(vectors, ids, q, 10)
    assert live.base.kind == "flat" and live.index_version == 7 and len(live) == 500


def test_ivf_above_threshold_has_high_recall(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, _, meta = catalog
    rng = np.random.default_rng(1)  # clustered, as embeddings are
    vectors = unit(
        rng.normal(size=(20, 16))[rng.integers(0, 20, 500)] + rng.normal(size=(500, 16)) * 0.3
    )
    queries = unit(vectors[:100] + rng.normal(size=(100, 16)) * 0.2)

    def recall(params: IndexParams) -> tuple[float, float]:
        live = build_live_index(ids, vectors, meta, 0, params)
        assert live.base.kind == "ivf" and live.base.faiss_index.nlist == 89
        hits = 0
        for q in queries:
            hits += len({m for m, _, _ in live.search(q, 10)} & set(exact(vectors, ids, q, 10)))
        return hits / 1000, live.base.recall

    # nprobe starts at 1 and the build raises it until its own measurement reaches the goal
    measured, reported = recall(
        IndexParams(ann_threshold=100, ivf_nprobe=1, train_points_per_cell=5)
    )
    assert measured >= 0.99 and reported >= 0.99
    unmeasured, _ = recall(
        IndexParams(ann_threshold=100, ivf_nprobe=1, ivf_recall_goal=0, train_points_per_cell=5)
    )
    assert unmeasured < 0.95  # without it, one cell is far from enough


@pytest.mark.parametrize("threshold", [10_000, 100])
def test_filters_are_honoured_even_when_rare(catalog, threshold: int) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    params = IndexParams(  # one cell: the search must widen to find rare matches
        ann_threshold=threshold, ivf_nprobe=1, ivf_recall_goal=0, train_points_per_cell=5
    )
    live = build_live_index(ids, vectors, meta, 0, params)
    rare = {"m10", "m400"}
    got = live.search(vectors[0], 5, accept=lambda mid, _: mid in rare)
    assert {m for m, _, _ in got} == rare
    dramas = live.search(vectors[0], 20, accept=lambda _, m: "Drama" in m.genres)
    assert len(dramas) == 20 and all("Drama" in m.genres for _, _, m in dramas)


def test_a_filter_no_base_movie_passes_is_tested_on_columns_not_per_movie(catalog) -> None:  # type: ignore[no-untyped-def]
    """Widening to the whole catalog must not cost a Python call per movie (seconds at 1M)."""
    ids, vectors, meta = catalog
    live = build_live_index(ids, vectors, meta, 0, IndexParams(ann_threshold=100, ivf_nprobe=1))
    live = live.with_changes([("new", vectors[3], MovieMeta("New", ("Drama",), 2199))], [], 1)
    future = Filters(year_min=2100)
    calls = []

    def accept(mid: str, m: MovieMeta) -> bool:
        calls.append(mid)
        return future.admits(m)

    got = live.search(vectors[0], 5, accept, live.base.selection(future, future.mask))

    assert [mid for mid, _, _ in got] == ["new"]
    assert len(calls) == 1  # the delta's movie; every base row was refused by the columns


def test_delta_upserts_and_deletes_without_touching_the_old_snapshot(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    old = build_live_index(ids, vectors, meta, 0)
    q = vectors[0]
    newcomer = q.copy()  # identical to m0's vector: scores 1.0
    new = old.with_changes(
        [("new", newcomer, MovieMeta("New", (), None)), ("m1", -q, meta[1])],
        ["m0"],
        index_version=3,
    )
    top = [m for m, _, _ in new.search(q, 3)]
    assert top[0] == "new" and "m0" not in top
    assert "m1" not in top  # moved far away by its update
    assert new.get("m1")[0] @ q == pytest.approx(-1.0, abs=1e-5)  # type: ignore[index]
    assert "m0" not in new and "new" in new and len(new) == 500
    assert [m for m, _, _ in old.search(q, 1)] == ["m0"] and old.index_version == 0


def test_compaction_keeps_changes_applied_during_the_build(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    live = build_live_index(ids, vectors, meta, 0).with_changes(
        [("a", vectors[5], MovieMeta("A", (), None))], ["m2"], index_version=1
    )
    started_from = live
    base = BaseIndex.build(*live.live_items(), IndexParams(), live.base)
    # while the base was building, the refresher applied more
    live = live.with_changes([("a", vectors[6], MovieMeta("A2", (), None))], ["m3"], 2)
    live = live.with_changes([("b", vectors[7], MovieMeta("B", (), None))], [], 3)

    swapped = live.rebased(base, started_from)

    assert set(swapped.ids()) == set(live.ids())
    assert swapped.get("a")[1].title == "A2"  # type: ignore[index]
    assert "m2" not in swapped and "m3" not in swapped and "b" in swapped
    assert "m2" not in swapped.tombstones and swapped.index_version == 3  # folded into the base
    assert sorted(swapped.ids()) == sorted(set(swapped.ids()))


def test_searches_in_threads_never_fail_while_snapshots_are_swapped(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    current = {"live": build_live_index(ids, vectors, meta, 0)}
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                live = current["live"]
                got = live.search(vectors[1], 10)
                assert len(got) == 10 and len({m for m, _, _ in got}) == 10
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for step in range(1, 60):
        live = current["live"].with_changes(
            [(f"n{step}", vectors[step], meta[step])], [f"m{step}"], step
        )
        if step % 20 == 0:
            live = live.rebased(BaseIndex.build(*live.live_items()), live)
        current["live"] = live
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert isinstance(current["live"], LiveIndex) and len(current["live"]) == 500


def test_an_ivf_rebuild_reuses_the_trained_cells(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    params = IndexParams(ann_threshold=100, train_points_per_cell=5)
    first = BaseIndex.build(ids, vectors, meta, params)
    again = BaseIndex.build(ids[:400], vectors[:400], meta[:400], params, previous=first)
    cells = first.faiss_index.quantizer.reconstruct_n(0, 89)
    np.testing.assert_array_equal(cells, again.faiss_index.quantizer.reconstruct_n(0, 89))
    assert again.faiss_index.ntotal == 400


def test_a_selective_filter_scores_exactly_the_rows_it_admits() -> None:
    """A filter few movies pass gets the true best of those movies, even where the ANN index
    (one cell probed, calibration off) would miss them; a broad one still fills k."""
    rng = np.random.default_rng(1)
    n = 3000
    vectors = unit(rng.normal(size=(n, 16)))
    ids = [f"m{i}" for i in range(n)]
    meta = [MovieMeta(f"T{i}", ("Western",) if i % 50 == 0 else ("Drama",), 1990) for i in range(n)]
    params = IndexParams(
        ann_threshold=100, ivf_nprobe=1, ivf_recall_goal=0, train_points_per_cell=5
    )
    live = build_live_index(ids, vectors, meta, 0, params)
    westerns = Filters(frozenset({"Western"}))
    selection = live.base.selection(westerns, westerns.mask)
    assert selection.count == n // 50 and selection.rows is not None
    for q in vectors[:20]:
        top = [m for m, _, _ in live.search(q, 10, within=selection)]
        admitted = [i for i in range(n) if i % 50 == 0]
        assert top == exact(vectors[admitted], [ids[i] for i in admitted], q, 10)
    dramas = Filters(frozenset({"Drama"}))
    got = live.search(vectors[0], 10, within=live.base.selection(dramas, dramas.mask))
    assert len(got) == 10 and all(m.genres == ("Drama",) for _, _, m in got)
    nothing = Filters(year_min=2100)
    assert live.search(vectors[0], 10, within=live.base.selection(nothing, nothing.mask)) == []


def test_a_filters_selection_is_found_once_per_base() -> None:
    ids = [f"m{i}" for i in range(10)]
    vectors = unit(np.random.default_rng(2).normal(size=(10, 4)))
    live = build_live_index(ids, vectors, [MovieMeta(f"T{i}", ("Drama",), 2000) for i in ids], 0)
    calls: list[int] = []

    def mask_of(table):  # type: ignore[no-untyped-def]
        calls.append(len(table))
        return np.ones(len(table), bool)

    first = live.base.selection("drama", mask_of)
    assert live.base.selection("drama", mask_of) is first and calls == [10]
    for i in range(40):  # older filters make room for newer ones
        live.base.selection(i, mask_of)
    assert live.base.selection("drama", mask_of) is not first


def test_vectors_of_and_title_agree_with_get(catalog) -> None:  # type: ignore[no-untyped-def]
    ids, vectors, meta = catalog
    live = build_live_index(ids, vectors, meta, index_version=1)
    new = unit(np.ones((1, 16)))[0]
    live = live.with_changes([("m5", new, MovieMeta("Renamed", (), None))], ["m6"], 2)
    asked = ["m4", "m5", "m6", "absent", "m4"]
    matrix, present = live.vectors_of(asked)
    for position, movie_id in enumerate(asked):
        found = live.get(movie_id)
        assert present[position] == (found is not None)
        if found is None:
            assert live.title(movie_id) is None and not matrix[position].any()
        else:
            assert np.array_equal(matrix[position], found[0])
            assert live.title(movie_id) == found[1].title
    assert live.title("m5") == "Renamed" and np.array_equal(matrix[1], new)


def test_a_search_skipping_its_best_matches_returns_the_best_of_the_rest(catalog) -> None:  # type: ignore[no-untyped-def]
    """The base's answer is read best first and only until k are admitted: what is skipped,
    deleted or replaced by a delta entry must never push a better movie out."""
    ids, vectors, meta = catalog
    live = build_live_index(ids, vectors, meta, index_version=1)
    q = vectors[3]
    ranked = exact(vectors, ids, q, 60)
    deleted, seen = ranked[1:4], set(ranked[0:12:2])
    better = unit(q[None, :] + 0.01)[0]  # a delta movie scoring near the top
    live = live.with_changes([("m499", better, meta[499])], deleted, 2)
    found = [m for m, _, _ in live.search(q, 10, skip=seen.__contains__)]
    truth = sorted(
        (m for m in ids if m not in seen and m not in deleted),
        key=lambda m: -float((better if m == "m499" else vectors[ids.index(m)]) @ q),
    )[:10]
    assert found == truth

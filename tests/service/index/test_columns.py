"""The columnar movie metadata gives back exactly the movies it was given."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.columns import MetaTable, MovieMeta

MOVIES = [
    MovieMeta("Amélie", ("Comedy", "Romance"), 2001, 3),
    MovieMeta("Alien", ("Horror", "Sci-Fi"), 1979, 0),
    MovieMeta("Untitled, undated", (), None, 7),
    MovieMeta("", ("Drama",), 1950, 1),
    MovieMeta("Aliens", ("Horror", "Sci-Fi"), 1986, 2),
]


def test_every_row_reads_back_as_given() -> None:
    table = MetaTable.of(MOVIES)

    assert len(table) == len(MOVIES)
    assert [table[row] for row in range(len(MOVIES))] == MOVIES
    assert list(table) == MOVIES
    assert table.all_titles() == [m.title for m in MOVIES]
    assert table.title(0) == "Amélie"
    assert table.distinct_genres() == {"Comedy", "Romance", "Horror", "Sci-Fi", "Drama"}
    assert len(table.genre_sets) == 4  # the repeated set is stored once


def test_compaction_keeps_rows_in_order_and_appends() -> None:
    table = MetaTable.of(MOVIES)
    newer = [MovieMeta("Zéphyrine", ("Drama",), 2026, 9), MovieMeta("New", ("Western",), None)]

    kept = table.take(np.array([4, 0, 2]))
    assert list(kept) == [MOVIES[4], MOVIES[0], MOVIES[2]]
    assert list(kept.extended(newer)) == [MOVIES[4], MOVIES[0], MOVIES[2], *newer]
    assert list(table.take(np.array([], np.int64)).extended(newer)) == newer
    assert list(MetaTable.of([])) == []


def test_columns_rebuild_the_same_table() -> None:
    table = MetaTable.of(MOVIES)
    copy = MetaTable.from_titles_blob(
        table.titles, table.genre_sets, table.genre_codes, table.years, table.versions
    )

    assert list(copy) == MOVIES


def test_columns_that_do_not_fit_are_refused() -> None:
    table = MetaTable.of(MOVIES)
    columns = (table.genre_sets, table.genre_codes, table.years, table.versions)

    with pytest.raises(ValueError):  # a title lost its terminator: one title too few
        MetaTable.from_titles_blob(table.titles[:-1], *columns)
    with pytest.raises(ValueError):
        MetaTable.from_titles_blob(table.titles, table.genre_sets[:1], *columns[1:])
    with pytest.raises(ValueError):
        MetaTable.of([MovieMeta("two\nlines", (), None)])

from __future__ import annotations

from typing import Any

import pytest

from embeddings import data
from embeddings.data import BUNDLED_DATA, MAX_TAGS_PER_MOVIE, DataError, load_dataset, split_title
from tests.support.embeddings import WriteData


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Babylon 5", ("Babylon 5", None)),
        ("Death Note: Desu nôto (2006\u20132007)", ("Death Note: Desu nôto", 2006)),
        ("Some Show (2007-)", ("Some Show", 2007)),
        ("Ready Player One ", ("Ready Player One", None)),
        ("Stranger Things (2016\u2013 )", ("Stranger Things", 2016)),
        ("1984 (1984)", ("1984", 1984)),
    ],
)
def test_split_title_separates_the_year(title: str, expected: tuple[str, int | None]) -> None:
    assert split_title(title) == expected


def test_bundled_data_loads_with_its_quirks_counted() -> None:
    dataset = load_dataset(BUNDLED_DATA)
    assert len(dataset.movies) == 9742
    assert len(dataset.ratings) == 100_836
    assert dataset.report["movies_without_genres"] == 34
    assert dataset.report["movies_without_year"] == 12
    toy_story = dataset.movies[0]
    assert (toy_story.id, toy_story.title, toy_story.year) == ("1", "Toy Story", 1995)
    assert "pixar" in toy_story.tags


def test_no_genres_and_no_year_are_kept_and_counted(write_data: WriteData) -> None:
    dataset = load_dataset(write_data(ratings=[("1", "4", "4.0", "10"), ("1", "5", "3.0", "11")]))
    by_id = {m.id: m for m in dataset.movies}
    assert by_id["5"].genres == ()
    assert (by_id["4"].title, by_id["4"].year) == ("Babylon 5", None)
    assert dataset.report["movies_without_genres"] == 1
    assert dataset.report["movies_without_year"] == 1
    assert dataset.report["tags_file_missing"] == 1


def test_bad_rows_unknown_movies_and_duplicates_are_skipped_and_counted(
    write_data: WriteData,
) -> None:
    ratings = [
        ("1", "1", "4.0", "10"),
        ("1", "1", "2.0", "20"),  # re-rated later: the later rating wins
        ("1", "999", "4.0", "30"),  # not in movies.csv
        ("1", "2", "four", "40"),  # unparseable
        ("", "2", "4.0", "50"),  # no user
        ("2", "3", "5.0", "60"),
    ]
    dataset = load_dataset(write_data(ratings=ratings))
    assert len(dataset.ratings) == 2
    assert dataset.ratings.ratings.tolist() == [2.0, 5.0]
    assert dataset.report["ratings_duplicate"] == 1
    assert dataset.report["ratings_unknown_movie"] == 1
    assert dataset.report["ratings_bad_rows"] == 2


def test_tags_are_lower_cased_and_ordered_by_use(write_data: WriteData) -> None:
    tags = [("1", "1", "Pixar", "1"), ("2", "1", "fun", "2"), ("3", "1", "pixar ", "3")]
    dataset = load_dataset(write_data(ratings=[("1", "1", "4", "1")], tags=tags))
    assert dataset.movies[0].tags == ("pixar", "fun")


def test_a_movie_keeps_its_20_most_used_tags(write_data: WriteData) -> None:
    """The tag rule the stored record and training share (movie 296 has 173 distinct tags)."""
    tags = [(str(u), "1", f"tag{t}", "1") for t in range(25) for u in range(25 - t)]
    dataset = load_dataset(write_data(ratings=[("1", "1", "4", "1")], tags=tags))
    assert dataset.movies[0].tags == tuple(f"tag{t}" for t in range(MAX_TAGS_PER_MOVIE))


def test_missing_columns_are_a_data_error(write_data: WriteData) -> None:
    directory = write_data(
        ratings=[("1", "1", "4.0")], ratings_header=("userId", "movieId", "rating")
    )
    with pytest.raises(DataError, match="missing columns timestamp"):
        load_dataset(directory)


def test_missing_movie_columns_are_a_data_error(write_data: WriteData) -> None:
    directory = write_data(movies=[("1", "Toy Story (1995)")], movies_header=("movieId", "title"))
    with pytest.raises(DataError, match=r"movies\.csv: missing columns genres"):
        load_dataset(directory)


def test_an_empty_ratings_file_is_a_data_error(write_data: WriteData) -> None:
    with pytest.raises(DataError, match="no usable ratings"):
        load_dataset(write_data(ratings=[]))


def test_a_missing_directory_is_a_data_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="file not found"):
        load_dataset(tmp_path / "nowhere")


def test_numeric_blocks_read_exactly_as_row_by_row(
    write_data: WriteData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NumPy path (plain numeric rows) keeps and skips exactly what `csv` row by row does,
    line numbers included, in blocks that mix both paths."""
    huge = "1" + "0" * 400  # digits only, but not a finite rating
    ratings = [
        *[(u, m, "3.5", 100 + u) for u in (1, 2) for m in (1, 2, 3)],
        ("3", "999", "4.0", "7"),  # unknown movie
        ("3", "1", huge, "8"),
        ("3", "2", "4.", "9"),
        (" 4", "1", "2.0", "10"),  # a space: this block goes row by row
        ("4", "2", "four", "11"),
        *[(u, 4, "0.5", 200 + u) for u in range(5, 12)],
    ]
    directory = write_data(ratings=ratings)
    known = {"1", "2", "3", "4"}

    def read() -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
        skipped: list[tuple[int, str]] = []
        rows = [
            row
            for block in data.read_rating_blocks(
                directory, known, lambda _f, line, _r, message: skipped.append((line, message))
            )
            for row in zip(
                block.lines.tolist(),
                block.user_ids,
                block.movie_ids,
                block.ratings.tolist(),
                block.timestamps.tolist(),
                strict=True,
            )
        ]
        return rows, skipped

    monkeypatch.setattr(data, "BLOCK_BYTES", 40)  # a few rows a block
    fast_blocks = []
    numeric_block = data._numeric_block

    def spy(*args: Any) -> data.RatingBlock | None:
        fast_blocks.append(block := numeric_block(*args))
        return block

    monkeypatch.setattr(data, "_numeric_block", spy)
    fast = read()
    monkeypatch.setattr(data, "_numeric_block", lambda *args: None)
    slow = read()

    assert fast == slow
    assert sum(block is not None for block in fast_blocks) >= 3  # the fast path did run
    rows, skipped = fast
    assert len(rows) == 6 + 1 + 1 + 7  # " 4" is stripped to "4", as csv rows always were
    assert [line for line, _ in skipped] == [8, 9, 12]

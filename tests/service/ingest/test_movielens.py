"""The MovieLens dataset as store records: what is kept, what is skipped, what stops the import.

Parsing itself (titles, years, tags) is tested where it lives: tests/embeddings/test_data.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.ingest.movielens import DatasetError, read_movielens


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text.strip() + "\n", encoding="utf-8")


def test_rows_are_parsed_and_bad_ones_reported_with_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "movies.csv",
        """
movieId,title,genres
1,Toy Story (1995),Adventure|Animation
2,Untitled Thing,(no genres listed)
3,,Drama
""",
    )
    write(
        tmp_path,
        "ratings.csv",
        """
userId,movieId,rating,timestamp
7,1,4.0,100
7,2,abc,101
7,99,3.0,102
""",
    )
    write(tmp_path, "tags.csv", "userId,movieId,tag,timestamp\n7,1,Pixar,1\n8,1,pixar,2\n8,1,fun,3")

    data = read_movielens(tmp_path)

    assert [m.id for m in data.movies] == ["1", "2"]
    toy, untitled = data.movies
    assert (toy.title, toy.year, toy.genres, toy.tags) == (
        "Toy Story",
        1995,
        ("Adventure", "Animation"),
        ("pixar", "fun"),
    )
    assert (untitled.year, untitled.genres) == (None, ())
    assert data.rating_rows == 3
    assert [e.movie_id for e in data.all_events()["7"]] == ["1"]
    assert data.events_read == 1
    assert {(b.file, b.line) for b in data.bad_rows} == {
        ("movies.csv", 4),
        ("ratings.csv", 3),
        ("ratings.csv", 4),
    }


def test_missing_column_stops_with_a_clear_message(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", "movieId,name\n1,x")
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp")
    with pytest.raises(DatasetError, match=r"movies.csv: missing columns title, genres"):
        read_movielens(tmp_path)


def test_missing_file_stops_with_a_clear_message(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", "movieId,title,genres\n1,x,Drama")
    with pytest.raises(DatasetError, match=r"ratings\.csv: file not found"):
        read_movielens(tmp_path)


def test_links_give_imdb_and_tmdb_ids_and_bad_ones_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,B,Drama")
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp")
    write(tmp_path, "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n2,tt99,")
    data = read_movielens(tmp_path)
    by_id = {m.id: m for m in data.movies}
    assert (by_id["1"].imdb_id, by_id["1"].tmdb_id) == ("0114709", "862")
    assert (by_id["2"].imdb_id, by_id["2"].tmdb_id) == (None, None)
    assert [(b.file, b.line) for b in data.bad_rows] == [("links.csv", 3)]


def test_bundled_links_cover_the_catalog() -> None:
    from embeddings.data import BUNDLED_DATA

    movies = read_movielens(BUNDLED_DATA).movies
    assert sum(m.imdb_id is not None for m in movies) == len(movies) == 9742
    assert sum(m.tmdb_id is not None for m in movies) >= 9730  # a few have no TMDB entry

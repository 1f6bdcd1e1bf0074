"""Title search over a live: normalisation, ranking, the delta and tombstones, and the bounded
work of one query (repeated words, one letter, many common words)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from service.index import titles
from service.index.live import LiveIndex, MovieMeta, build_live_index
from service.index.titles import (
    TitleIndex,
    TitleIndexBuilding,
    genres_of,
    normalize,
    search_titles,
    title_index,
    title_search,
    tokens_of,
)

pytestmark = pytest.mark.anyio

METAS = {
    "1": MovieMeta("Toy Story", ("Animation",), 1995),
    "2": MovieMeta("Toy Story 2", ("Animation",), 1999),
    "3": MovieMeta("The Story of Us", ("Drama",), 1999),
    "4": MovieMeta("Amélie (Fabuleux destin d'Amélie Poulain, Le)", ("Romance",), 2001),
    "5": MovieMeta("Alien", ("Horror",), 1979),
    "6": MovieMeta("Aliens", ("Action",), 1986),
}


def live_index() -> LiveIndex:
    ids = list(METAS)
    vectors = np.eye(len(ids), dtype=np.float32)
    return build_live_index(ids, vectors, [METAS[i] for i in ids], index_version=len(ids))


def catalog(size: int, meta: Callable[[int], MovieMeta]) -> LiveIndex:
    """`size` movies "0", "1", ... with `meta(i)` (one-dimensional vectors: titles only)."""
    metas = [meta(i) for i in range(size)]
    vectors = np.zeros((size, 1), np.float32)
    return build_live_index([str(i) for i in range(size)], vectors, metas, index_version=1)


WORDS = ("silent", "river", "night", "storm", "secret", "red", "glass", "moon", "station", "sea")


def common_words(i: int) -> MovieMeta:
    """Every title has "the" and "of", like the synthetic catalog's ("The Silent Red of the
    Moon"); a few have the whole word "t" (from "Don't")."""
    a, b, c = WORDS[i % 10], WORDS[i // 10 % 10], WORDS[i // 100 % 10]
    title = f"Don't {a}" if i % 1000 == 7 else f"The {a} {b} of the {c}"
    return MovieMeta(title, ("Drama",), 1930 + i % 90)


def expected(live: LiveIndex, query: str, limit: int) -> list[str]:
    """The answer by its definition: every live movie whose title starts with the query or
    whose words (or year) start with each word of it, ranked, read one by one."""
    normalized = normalize(query)
    words = normalized.split()
    ranked = []
    for movie_id in live.base.ids:
        if movie_id in live.tombstones:
            continue
        meta = live.base.meta[live.base.row_of[movie_id]]
        title = normalize(meta.title)
        tokens = tokens_of(title, meta.year)
        if title.startswith(normalized) or all(any(t.startswith(w) for t in tokens) for w in words):
            ranked.append((titles._rank(normalized, title), movie_id))
    return [movie_id for _, movie_id in sorted(ranked)[:limit]]


async def found(live, query: str, limit: int = 10) -> list[str]:  # type: ignore[no-untyped-def]
    return [hit.movie_id for hit in await search_titles(live, query, limit)]


def test_normalize_ignores_case_accents_and_punctuation() -> None:
    assert normalize("  AMÉLIE: d'Amélie!  ") == "amelie d amelie"
    assert normalize("Léon") == normalize("LEON") == "leon"


async def test_exact_title_first_then_prefixes_then_other_matches() -> None:
    live = live_index()
    assert await found(live, "toy story") == ["1", "2"]
    assert await found(live, "STORY") == ["1", "2", "3"]  # no exact or prefix: shorter first
    assert await found(live, "the story") == ["3"]
    assert (await found(live, "alien"))[0] == "5"  # exact before the longer "Aliens"
    assert await found(live, "alien 1986") == ["6"]  # the year is a word too
    assert await found(live, "amelie") == ["4"] == await found(live, "AMÉLIE poul")
    assert await found(live, "toy", limit=1) == ["1"]
    assert await found(live, "   ") == []
    assert await found(live, "nothing like it") == []


async def test_webhook_changes_are_searchable_at_once() -> None:
    live = live_index()
    vector = np.ones(len(METAS), np.float32)
    changed = live.with_changes(
        [
            ("7", vector, MovieMeta("Zéphyrine", ("Drama",), 2026)),
            ("2", vector, MovieMeta("Toy Story Two", ("Animation",), 1999)),
        ],
        ["1"],
        index_version=9,
    )
    assert await found(changed, "zephyrine") == ["7"]
    assert await found(changed, "toy story") == ["2"]  # 1 deleted, 2 renamed (from the delta)
    assert await found(changed, "toy story 2") == []  # the base's old title is masked
    assert await found(live, "zephyrine") == []  # the old live is untouched


async def test_a_request_does_not_wait_for_a_title_index_being_built() -> None:
    live = live_index()  # a new base, as after a compaction: nothing built for it yet
    with pytest.raises(TitleIndexBuilding):
        await search_titles(live, "toy", 5, wait=0)
    assert await genres_of(live) == []  # the status poll answers without it
    assert await found(live, "toy") == ["1", "2"]  # the build went on and finishes
    assert await genres_of(live) == ["Action", "Animation", "Drama", "Horror", "Romance"]


async def test_repeated_words_and_words_starting_another_count_once() -> None:
    live = live_index()
    assert await found(live, "toy toy toy") == await found(live, "toy") == ["1", "2"]
    assert await found(live, "t t t t t t t t") == await found(live, "t") == ["1", "2", "3"]
    assert await found(live, "st story sto story") == await found(live, "story")
    index = await title_index(live.base)
    assert index.plan("t t t t t t t t", ["t"] * 8, 10).words == [("t", False)]
    assert index.plan("st story s", ["st", "story", "s"], 10).words == [("story", False)]


NUMBERED_QUERIES = ["title 19", "19 title", "title 195", "title 1", "moon 1999", "title 11 se"]
NUMBERED_QUERIES += ["sea", "ti 19 st", "title 11 12", "title 1100", "19 moon ti"]


def numbered() -> LiveIndex:
    """Years and title numbers share prefixes ("19" starts 1999 and 19, 190, 1900...)."""
    live = catalog(12_000, lambda i: MovieMeta(f"Title {i} {WORDS[i % 10]}", (), 1900 + i % 100))
    return live.with_changes([], [str(i) for i in range(0, 12_000, 3)], index_version=2)


async def test_answers_are_the_best_titles_having_every_word() -> None:
    """Against the definition, with tombstones; no word is past the cap."""
    live = numbered()
    for query in NUMBERED_QUERIES:
        assert await found(live, query) == expected(live, query, 10), query


async def test_an_index_read_from_a_snapshot_file_answers_the_same() -> None:
    """Its years are read from the base at the first search (a word may start a year)."""
    live = numbered()
    titles.remember(live.base, TitleIndex.from_parts(**TitleIndex(live.base).parts()))  # type: ignore[arg-type]
    for query in NUMBERED_QUERIES:
        assert await found(live, query) == expected(live, query, 10), query


async def test_a_one_letter_query_does_bounded_work() -> None:
    """A lone "t" starts "the", in every title: as a prefix it would read every posting. Past
    the cap (1,000 of 20,000 titles here, as 100,000 of 1M) it is a whole word: titles starting
    with "t" come first, then those having the word."""
    live = catalog(20_000, common_words)
    index = await title_index(live.base)
    cap = 1000
    for query in ("t", "t t t t t t t t"):
        result = index.plan(query, query.split(), 10, cap).run()
        assert result.work.postings <= cap and result.work.candidates <= cap + 10
        hits = [index.titles[rank] for rank in result.ranks]
        if query == "t":
            assert len(hits) == 10 and all(title.startswith("t") for title in hits)
        else:
            assert hits and all(" t " in f" {title} " for title in hits)  # Don't ...


async def test_many_common_words_stop_at_the_cap_with_the_best_of_what_was_examined() -> None:
    live = catalog(20_000, common_words)
    index = await title_index(live.base)
    cap = 1000
    exact = index.plan("the silent", ["the", "silent"], 10, cap=10**9).run()
    capped = index.plan("the silent", ["the", "silent"], 10, cap).run()
    assert capped.ranks == exact.ranks and not capped.work.capped  # enough among the first
    assert capped.work.postings <= cap

    words = ["the", "of", "silent", "river", "night", "storm", "secret"]
    none = index.plan(" ".join(words), words, 10, cap).run()
    assert none.ranks == [] and none.work.capped  # no title has 5 of these words
    assert none.work.candidates <= cap
    assert none.work.postings <= cap + len(words) * titles._MAX_UNION


async def test_the_cost_is_known_before_any_posting_is_read() -> None:
    """What decides whether a search may run on the event loop: a rare word costs little, many
    common words cost more (at 20k titles every one of these is cheap enough)."""
    live = catalog(20_000, common_words)
    await title_index(live.base)
    rare = await title_search(live, "silent river 1931", 10)
    letters = await title_search(live, "t t t t t t t t", 10)
    common = await title_search(live, "the of silent river night storm", 10)
    assert rare.cheap and letters.cheap and common.cheap
    assert rare.query.cost < common.query.cost <= titles.MAX_WORK


async def test_a_movie_just_added_is_found_by_its_first_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also when the letter is a whole word (past the cap): the delta is ranked as the base."""
    live = catalog(20_000, common_words)
    await title_index(live.base)
    added = live.with_changes(
        [("new", np.zeros(1, np.float32), MovieMeta("Tango", (), 2020))], [], index_version=2
    )
    for cap in (titles.MAX_CANDIDATES, 1000):
        monkeypatch.setattr(titles, "MAX_CANDIDATES", cap)
        assert (await found(added, "t"))[0] == "new"  # the shortest title starting with "t"
        assert await found(added, "tango") == ["new"]

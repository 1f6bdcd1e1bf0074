"""Title search over a live: normalisation, ranking, and the delta and tombstones."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.live import LiveIndex, MovieMeta, build_live_index
from service.index.titles import TitleIndexBuilding, genres_of, normalize, search_titles

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

"""Title search over a snapshot: normalisation, ranking, and the delta and tombstones."""

from __future__ import annotations

import numpy as np
import pytest

from service.index import MovieMeta, Snapshot, build_snapshot
from service.titles import TitleIndexBuilding, genres_of, normalize, search_titles

pytestmark = pytest.mark.anyio

METAS = {
    "1": MovieMeta("Toy Story", ("Animation",), 1995),
    "2": MovieMeta("Toy Story 2", ("Animation",), 1999),
    "3": MovieMeta("The Story of Us", ("Drama",), 1999),
    "4": MovieMeta("Amélie (Fabuleux destin d'Amélie Poulain, Le)", ("Romance",), 2001),
    "5": MovieMeta("Alien", ("Horror",), 1979),
    "6": MovieMeta("Aliens", ("Action",), 1986),
}


def snapshot() -> Snapshot:
    ids = list(METAS)
    vectors = np.eye(len(ids), dtype=np.float32)
    return build_snapshot(ids, vectors, [METAS[i] for i in ids], applied_seq=len(ids))


async def found(snap, query: str, limit: int = 10) -> list[str]:  # type: ignore[no-untyped-def]
    return [hit.movie_id for hit in await search_titles(snap, query, limit)]


def test_normalize_ignores_case_accents_and_punctuation() -> None:
    assert normalize("  AMÉLIE: d'Amélie!  ") == "amelie d amelie"
    assert normalize("Léon") == normalize("LEON") == "leon"


async def test_exact_title_first_then_prefixes_then_other_matches() -> None:
    snap = snapshot()
    assert await found(snap, "toy story") == ["1", "2"]
    assert await found(snap, "STORY") == ["1", "2", "3"]  # no exact or prefix: shorter first
    assert await found(snap, "the story") == ["3"]
    assert (await found(snap, "alien"))[0] == "5"  # exact before the longer "Aliens"
    assert await found(snap, "alien 1986") == ["6"]  # the year is a word too
    assert await found(snap, "amelie") == ["4"] == await found(snap, "AMÉLIE poul")
    assert await found(snap, "toy", limit=1) == ["1"]
    assert await found(snap, "   ") == []
    assert await found(snap, "nothing like it") == []


async def test_webhook_changes_are_searchable_at_once() -> None:
    snap = snapshot()
    vector = np.ones(len(METAS), np.float32)
    changed = snap.with_changes(
        [
            ("7", vector, MovieMeta("Zéphyrine", ("Drama",), 2026)),
            ("2", vector, MovieMeta("Toy Story Two", ("Animation",), 1999)),
        ],
        ["1"],
        applied_seq=9,
    )
    assert await found(changed, "zephyrine") == ["7"]
    assert await found(changed, "toy story") == ["2"]  # 1 deleted, 2 renamed (from the delta)
    assert await found(changed, "toy story 2") == []  # the base's old title is masked
    assert await found(snap, "zephyrine") == []  # the old snapshot is untouched


async def test_a_request_does_not_wait_for_a_title_index_being_built() -> None:
    snap = snapshot()  # a new base, as after a compaction: nothing built for it yet
    with pytest.raises(TitleIndexBuilding):
        await search_titles(snap, "toy", 5, wait=0)
    assert await genres_of(snap) == []  # the status poll answers without it
    assert await found(snap, "toy") == ["1", "2"]  # the build went on and finishes
    assert await genres_of(snap) == ["Action", "Animation", "Drama", "Horror", "Romance"]

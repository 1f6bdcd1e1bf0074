"""Snapshot files: what is written is what is read back, and anything doubtful is refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic_catalog import clustered_vectors
from service.index.live import BaseIndex, IndexParams, MovieMeta
from service.index.snapshot_file import TEMP_PREFIX, Identity, SnapshotDir, SnapshotUnusable
from service.index.titles import TitleIndex, normalize

IVF = IndexParams(ann_threshold=100, ivf_nprobe=4)
FLAT = IndexParams()


def catalog(n: int) -> tuple[list[str], np.ndarray, list[MovieMeta]]:
    ids = [f"m{i}" for i in range(n)]
    metas = [
        MovieMeta(f"Film {i} ünïcode", ("Drama", "Sci-Fi") if i % 3 else (), 1950 + i % 60, i)
        if i % 7
        else MovieMeta(f"Undated {i}", ("Comedy",), None, 0)
        for i in range(n)
    ]
    return ids, clustered_vectors(n, 16), metas


def identity(params: IndexParams, epoch: str = "e1", model: str = "v1") -> Identity:
    return Identity(model, epoch, params)


SQ8 = IndexParams(ann_threshold=100, ivf_nprobe=4, ivf_codes="SQ8")


@pytest.mark.parametrize("params", [FLAT, IVF, SQ8], ids=["flat", "ivf", "ivf-sq8"])
def test_a_published_base_reads_back_the_same(tmp_path: Path, params: IndexParams) -> None:
    base = BaseIndex.build(*catalog(3000), params)
    snapshots = SnapshotDir(tmp_path)
    snapshots.publish(base, 42, identity(params))

    loaded = snapshots.load(identity(params))

    assert loaded.index_version == 42
    copy = loaded.base
    assert copy.kind == base.kind == ("flat" if params is FLAT else "ivf")
    assert copy.rerank == base.rerank
    assert copy.ids == base.ids and list(copy.meta) == list(base.meta)
    assert copy.row_of == base.row_of
    assert np.array_equal(copy.vectors, base.vectors)
    assert copy.recall == base.recall
    queries = clustered_vectors(50, 16, seed=9)
    for query in queries:  # the same answers, in the same order, from the same cells
        assert np.array_equal(copy.search(query, 10)[1], base.search(query, 10)[1])
    if params is not FLAT:
        assert copy.faiss_index.nprobe == base.faiss_index.nprobe
        assert copy.faiss_index.nlist == base.faiss_index.nlist


def test_another_model_epoch_or_parameters_is_foreign(tmp_path: Path) -> None:
    snapshots = SnapshotDir(tmp_path)
    snapshots.publish(BaseIndex.build(*catalog(50), FLAT), 1, identity(FLAT))

    for other in (identity(FLAT, model="v2"), identity(FLAT, epoch="e2"), identity(IVF)):
        with pytest.raises(SnapshotUnusable) as refused:
            snapshots.load(other)
        assert refused.value.outcome == "foreign"
    with pytest.raises(SnapshotUnusable) as refused:
        SnapshotDir(tmp_path / "empty").load(identity(FLAT))
    assert refused.value.outcome == "none"


def test_a_renamed_foreign_file_is_refused_by_its_header(tmp_path: Path) -> None:
    snapshots = SnapshotDir(tmp_path)
    path = snapshots.publish(BaseIndex.build(*catalog(50), FLAT), 1, identity(FLAT, model="v2"))
    path.rename(tmp_path / path.name.replace(identity(FLAT, model="v2").tag, identity(FLAT).tag))

    with pytest.raises(SnapshotUnusable) as refused:
        snapshots.load(identity(FLAT))
    assert refused.value.outcome == "foreign"


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_a_damaged_file_is_corrupt(tmp_path: Path, damage: str) -> None:
    snapshots = SnapshotDir(tmp_path)
    path = snapshots.publish(BaseIndex.build(*catalog(500), IVF), 7, identity(IVF))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[-100:]
    else:
        data += b"x"
    path.write_bytes(bytes(data))

    with pytest.raises(SnapshotUnusable) as refused:
        snapshots.load(identity(IVF))
    assert refused.value.outcome == "corrupt"
    assert not path.exists()  # removed, so it cannot hide the next replica's fresh one


def test_publishing_keeps_the_newest_and_removes_the_abandoned(tmp_path: Path) -> None:
    snapshots = SnapshotDir(tmp_path, keep=2)
    base = BaseIndex.build(*catalog(50), FLAT)
    old_model = snapshots.publish(base, 1, identity(FLAT, model="v0"))
    leftover = tmp_path / f"{TEMP_PREFIX}crashed.snap"
    leftover.write_bytes(b"half")
    day_ago = old_model.stat().st_mtime - 2 * 24 * 3600
    for stale in (old_model, leftover):
        os.utime(stale, (day_ago, day_ago))
    for seq in (3, 9, 5):
        snapshots.publish(base, seq, identity(FLAT))

    kept = sorted(int(p.name.split("-")[1]) for p in tmp_path.iterdir())
    assert kept == [5, 9]  # the newest two; the old model's file and the temporary are gone
    assert snapshots.load(identity(FLAT)).index_version == 9


def test_the_title_index_travels_with_the_base(tmp_path: Path) -> None:
    base = BaseIndex.build(*catalog(2000), FLAT)
    titles = TitleIndex(base)
    snapshots = SnapshotDir(tmp_path)
    snapshots.publish(base, 3, identity(FLAT), titles)

    copy = snapshots.load(identity(FLAT)).titles

    assert copy is not None and copy.genres == titles.genres
    for query in ("film 1", "unicode", "undated 7", "1999", "film 19 unïcode"):
        words = normalize(query).split()
        assert copy.ranks(normalize(query), words, 20) == titles.ranks(normalize(query), words, 20)
    assert SnapshotDir(tmp_path / "none").publish(base, 1, identity(FLAT)).exists()  # optional


def test_a_snapshot_being_written_is_invisible_to_readers(tmp_path: Path) -> None:
    snapshots = SnapshotDir(tmp_path)
    snapshots.publish(BaseIndex.build(*catalog(50), FLAT), 4, identity(FLAT))
    tag = identity(FLAT).tag
    (tmp_path / f"{TEMP_PREFIX}{tag}-{99:016d}-writing.snap").write_bytes(b"MRSNAP half")

    assert snapshots.load(identity(FLAT)).index_version == 4  # not the newer, unfinished one
    assert snapshots.newest_seq(identity(FLAT)) == 4

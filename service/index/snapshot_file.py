"""Index snapshots in a shared directory, so a new replica starts with one sequential read.

A replica that finished a full sync or a compaction writes its base index (ids, what serving
needs of each movie, the vectors, the trained IVF cells and each movie's cell) with the
change-log sequence it includes, the store's epoch and the model version. A starting replica
reads the newest one written for its model, epoch and index parameters, then tails the change
log from that sequence like any replica. Anything doubtful (another model or epoch, a sequence
the log no longer holds, a checksum or length that does not match) is refused with a reason,
and the caller falls back to a full sync from the store.

One file per snapshot: `MAGIC`, a little-endian u64 header length and u32 header CRC, the JSON
header, then the sections in the header's order, each with its own CRC-32 (a checksum against
truncation and bit rot, not an adversary: whoever can write the directory can write the store).
Files are written under a temporary name, fsynced and renamed, so a reader sees a whole file or
none, and named by content (model, epoch, parameters), sequence and a random suffix, so
replicas never write the same name. Each publish keeps the newest `keep` of its kind and removes
what nobody has written for a day (old epochs and models) and abandoned temporary files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from service.index.columns import MetaTable, Texts
from service.index.live import BaseIndex, IndexParams
from service.index.titles import TitleIndex

log = logging.getLogger(__name__)

FORMAT = 2  # 2: movie metadata as columns (1: one title/genres line per movie)
MAGIC = b"MRSNAP\x00\x01"
PREAMBLE = struct.Struct("<8sQI")  # magic, header length, header CRC-32
SUFFIX = ".snap"
TEMP_PREFIX = ".tmp-"
ABANDONED_SECONDS = 24 * 3600  # other kinds and temporary files untouched this long are removed
READ_CHUNK = 64 << 20  # readinto in pieces: one huge read call holds the GIL throughout

Outcome = Literal["loaded", "none", "foreign", "stale", "corrupt"]


class SnapshotUnusable(Exception):
    """No snapshot this replica may start from; `outcome` says why (a metric label)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Identity:
    """What a snapshot must match to be used: the model, the store's epoch, how to index."""

    model_version: str
    epoch: str
    params: IndexParams

    def as_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "epoch": self.epoch,
            "params": dataclasses.asdict(self.params),
        }

    @property
    def tag(self) -> str:
        """The file name prefix of this identity's snapshots in this file format: a file of
        another format is never a candidate, nor counted as this state already written."""
        text = json.dumps({"format": FORMAT, **self.as_json()}, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:16]


@dataclass(frozen=True)
class Loaded:
    base: BaseIndex
    titles: TitleIndex | None  # the base's title index, when the writer had it
    index_version: int
    path: Path
    bytes_read: int


def _joined(items: Sequence[str], what: str) -> bytes:
    """Newline-joined text; the store refuses control characters, so a newline cannot occur."""
    blob = "\n".join(items)
    if blob.count("\n") != max(len(items) - 1, 0):
        raise ValueError(f"a {what} holds a newline; cannot write a snapshot")
    return blob.encode()


def _split(blob: bytes, count: int, what: str) -> list[str]:
    if count == 0:
        return []
    parts = blob.decode().split("\n")
    if len(parts) != count:
        raise SnapshotUnusable("corrupt", f"{what}: {len(parts)} entries for {count} movies")
    return parts


def _title_sections(titles: TitleIndex) -> dict[str, np.ndarray | bytes]:
    out: dict[str, np.ndarray | bytes] = {}
    for name, value in titles.parts().items():
        if isinstance(value, Texts):
            out[f"title_{name}"] = value.blob
        elif isinstance(value, list):
            out[f"title_{name}"] = _joined(value, f"title index {name}")
        else:
            out[f"title_{name}"] = np.ascontiguousarray(value)
    return out


def _title_index(header: dict[str, Any], data: dict[str, np.ndarray]) -> TitleIndex | None:
    if "title_titles" not in data:
        return None
    counts = header["title_counts"]

    def text(name: str) -> list[str]:
        return _split(data[f"title_{name}"].tobytes(), counts[name], f"title index {name}")

    try:
        return TitleIndex.from_parts(
            Texts.from_blob(data["title_titles"].tobytes()),
            data["title_row_at"],
            data["title_alphabetical"],
            text("tokens"),
            data["title_sizes"],
            data["title_postings"],
            text("genres"),
        )
    except ValueError as exc:
        raise SnapshotUnusable("corrupt", str(exc)) from None


def _sections(base: BaseIndex) -> dict[str, np.ndarray | bytes]:
    """The base as named byte sections (arrays stay arrays, written without a copy)."""
    meta = base.meta
    sections: dict[str, np.ndarray | bytes] = {
        "ids": _joined(base.ids, "movie id"),
        "titles": meta.titles,  # newline-terminated: the offsets are found again on load
        "genre_sets": _joined([",".join(g) for g in meta.genre_sets], "genre"),
        "genre_codes": meta.genre_codes,
        "years": meta.years,
        "versions": meta.versions,
        "vectors": np.ascontiguousarray(base.vectors, np.float32),
    }
    if base.kind == "ivf" and not isinstance(base.faiss_index, faiss.IndexIVFFlat):
        # Compressed cells (SQ, PQ): the whole FAISS index as FAISS serialises it.
        sections["ivf_whole"] = faiss.serialize_index(base.faiss_index)
    elif base.kind == "ivf":
        index = base.faiss_index
        cells = np.empty(len(base), np.int64)  # the cell of each row, so loading skips k-means
        invlists = index.invlists
        for cell in range(index.nlist):
            size = invlists.list_size(cell)
            if size:
                rows = faiss.rev_swig_ptr(invlists.get_ids(cell), size)
                cells[rows] = cell
        empty = faiss.IndexIVFFlat(
            faiss.clone_index(index.quantizer), index.d, index.nlist, index.metric_type
        )
        empty.is_trained = True
        empty.nprobe = index.nprobe
        sections["cells"] = cells
        sections["ivf"] = faiss.serialize_index(empty)
    return sections


def _bytes_of(data: np.ndarray | bytes) -> memoryview | bytes:
    return data.data.cast("B") if isinstance(data, np.ndarray) else data


def write_snapshot(
    path: Path,
    base: BaseIndex,
    index_version: int,
    identity: Identity,
    titles: TitleIndex | None = None,
) -> int:
    """Write `base` (and its title index) to `path` (the caller renames it into place);
    returns the bytes written."""
    sections = _sections(base)
    title_counts = {}
    if titles is not None:
        sections.update(_title_sections(titles))
        title_counts = {
            name: len(value)
            for name, value in titles.parts().items()
            if isinstance(value, list | Texts)
        }
    header = {
        "title_counts": title_counts,
        "format": FORMAT,
        **identity.as_json(),
        "index_version": index_version,
        "count": len(base),
        "dim": int(base.vectors.shape[1]) if base.vectors.ndim == 2 else 0,
        "kind": base.kind,
        "recall": base.recall,
        "rerank": base.rerank,
        "nprobe": int(base.faiss_index.nprobe) if base.kind == "ivf" else 0,
        "created_at": time.time(),
        "sections": [
            {
                "name": name,
                "bytes": len(_bytes_of(data)),
                "dtype": data.dtype.str if isinstance(data, np.ndarray) else "bytes",
                "crc32": zlib.crc32(_bytes_of(data)),
            }
            for name, data in sections.items()
        ],
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    written = 0
    with path.open("wb") as out:
        written += out.write(PREAMBLE.pack(MAGIC, len(encoded), zlib.crc32(encoded)))
        written += out.write(encoded)
        for data in sections.values():
            written += out.write(_bytes_of(data))
        out.flush()
        os.fsync(out.fileno())
    return written


def _read_exact(source: Any, buffer: memoryview, what: str) -> None:
    done = 0
    while done < len(buffer):
        got = source.readinto(buffer[done : done + READ_CHUNK])
        if not got:
            raise SnapshotUnusable("corrupt", f"{what}: the file ends early (truncated)")
        done += got


def read_snapshot(path: Path, identity: Identity) -> Loaded:
    """Read one snapshot file from start to end into its final arrays and check it."""
    with path.open("rb") as source:
        preamble = bytearray(PREAMBLE.size)
        _read_exact(source, memoryview(preamble), "preamble")
        magic, length, header_crc = PREAMBLE.unpack(preamble)
        if magic != MAGIC or length > 1 << 24:
            raise SnapshotUnusable("corrupt", f"{path.name} is not a snapshot of this format")
        encoded = bytearray(length)
        _read_exact(source, memoryview(encoded), "header")
        if zlib.crc32(encoded) != header_crc:
            raise SnapshotUnusable("corrupt", f"{path.name}: header checksum mismatch")
        header = json.loads(encoded)
        if header.get("format") != FORMAT:
            raise SnapshotUnusable("foreign", f"{path.name}: format {header.get('format')}")
        found = {k: header.get(k) for k in identity.as_json()}
        if found != json.loads(json.dumps(identity.as_json())):
            raise SnapshotUnusable("foreign", f"{path.name} was written for {found}")
        data: dict[str, np.ndarray] = {}
        for section in header["sections"]:
            dtype = np.uint8 if section["dtype"] == "bytes" else np.dtype(section["dtype"])
            array = np.empty(section["bytes"] // np.dtype(dtype).itemsize, dtype)
            view = array.data.cast("B")
            _read_exact(source, view, section["name"])
            if zlib.crc32(view) != section["crc32"]:
                raise SnapshotUnusable("corrupt", f"{path.name}: {section['name']} checksum")
            data[section["name"]] = array
        if source.read(1):
            raise SnapshotUnusable("corrupt", f"{path.name}: bytes after the last section")
        size = source.tell()
    base = _base_from(header, data)
    return Loaded(base, _title_index(header, data), int(header["index_version"]), path, size)


def _base_from(header: dict[str, Any], data: dict[str, np.ndarray]) -> BaseIndex:
    count, dim, kind = int(header["count"]), int(header["dim"]), header["kind"]
    ids = _split(data["ids"].tobytes(), count, "ids")
    vectors = data["vectors"].reshape(count, dim) if count else np.zeros((0, dim), np.float32)
    rows = data["genre_sets"].tobytes().decode().split("\n")
    try:
        meta = MetaTable.from_titles_blob(
            data["titles"].tobytes(),
            [tuple(row.split(",")) if row else () for row in rows],
            data["genre_codes"],
            data["years"],
            data["versions"],
        )
    except ValueError as exc:
        raise SnapshotUnusable("corrupt", f"movie metadata: {exc}") from None
    if len(meta) != count:
        raise SnapshotUnusable("corrupt", "the metadata does not match the movie count")
    index: Any
    if kind == "ivf" and "ivf_whole" in data:
        index = faiss.deserialize_index(data["ivf_whole"])
        if index.ntotal != count:
            raise SnapshotUnusable("corrupt", "the FAISS index does not match the movie count")
    elif kind == "ivf":
        index = faiss.deserialize_index(data["ivf"])
        cells = data["cells"]
        if len(cells) != count or (count and not 0 <= cells.min() <= cells.max() < index.nlist):
            raise SnapshotUnusable("corrupt", "cell assignments do not match the index")
        # FAISS's add_preassigned: rows go straight into their cells, no k-means assignment.
        index.add_core(count, faiss.swig_ptr(vectors), None, faiss.swig_ptr(cells))
        index.nprobe = int(header["nprobe"])
    else:
        index = faiss.IndexFlatIP(max(dim, 1))
        if count:
            index.add(vectors)
    return BaseIndex(
        ids=ids,
        vectors=vectors,
        meta=meta,
        row_of=dict(zip(ids, range(count), strict=True)),
        faiss_index=index,
        kind=kind,
        recall=float(header["recall"]),
        rerank=int(header.get("rerank", 0)),
    )


def _sequence_of(path: Path) -> int:
    try:
        return int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return -1


class SnapshotDir:
    """The directory replicas share (a compose volume, EFS on AWS)."""

    def __init__(self, directory: Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def _of(self, identity: Identity) -> list[Path]:
        """This identity's snapshots, newest sequence first."""
        found = self.directory.glob(f"{identity.tag}-*{SUFFIX}")
        return sorted(found, key=lambda p: (_sequence_of(p), p.name), reverse=True)

    def newest_seq(self, identity: Identity) -> int:
        snapshots = self._of(identity)
        return _sequence_of(snapshots[0]) if snapshots else -1

    def publish(
        self,
        base: BaseIndex,
        index_version: int,
        identity: Identity,
        titles: TitleIndex | None = None,
    ) -> Path:
        """Write, fsync and rename into place; then apply retention. Runs in a thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{identity.tag}-{index_version:016d}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        temporary = self.directory / f"{TEMP_PREFIX}{name}"
        try:
            size = write_snapshot(temporary, base, index_version, identity, titles)
            final = self.directory / name
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._sync_directory()
        log.info("published snapshot %s: %d movies, %.1f MB", name, len(base), size / 2**20)
        self.prune(identity)
        return final

    def _sync_directory(self) -> None:
        """Make the rename itself durable (not every filesystem supports it: best effort)."""
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def prune(self, identity: Identity) -> None:
        """Keep the newest `keep` of this identity; drop abandoned temporaries and other kinds."""
        mine = self._of(identity)
        doomed = mine[self.keep :]
        now = time.time()
        for path in self.directory.iterdir():
            if path in mine or not (path.name.endswith(SUFFIX)):
                continue
            try:
                if now - path.stat().st_mtime > ABANDONED_SECONDS:
                    doomed.append(path)
            except FileNotFoundError:
                continue
        for path in doomed:
            path.unlink(missing_ok=True)  # another replica may prune the same file

    def load(self, identity: Identity) -> Loaded:
        """The newest snapshot of `identity`, read and checked; SnapshotUnusable otherwise."""
        try:
            candidates = self._of(identity)
        except OSError as exc:
            raise SnapshotUnusable("none", f"cannot list {self.directory}: {exc}") from None
        if not candidates:
            others = [p for p in self.directory.glob(f"*{SUFFIX}") if p.is_file()]
            if others:
                raise SnapshotUnusable(
                    "foreign",
                    f"{len(others)} snapshot(s) in {self.directory}, none for model "
                    f"{identity.model_version} and this store epoch and index parameters",
                )
            raise SnapshotUnusable("none", f"no snapshot in {self.directory}")
        try:
            return read_snapshot(candidates[0], identity)
        except SnapshotUnusable as exc:
            if exc.outcome == "corrupt":
                # Published files are whole (renamed into place), so this one stays broken:
                # remove it, or it would hide the next replica's fresh snapshot of this state.
                candidates[0].unlink(missing_ok=True)
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            # RuntimeError: FAISS refusing its part; OSError: e.g. pruned while being read.
            raise SnapshotUnusable("corrupt", f"{candidates[0].name}: {exc}") from None

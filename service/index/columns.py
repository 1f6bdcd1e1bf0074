"""What serving needs of each movie in a base index, kept as columns.

A base holds up to millions of movies, and a request looks at a few dozen of them: one Python
object per movie cost most of a snapshot start at 1M (building ~1M objects, and the collector
rescanning them). So a `MetaTable` keeps the titles as one UTF-8 blob with offsets, the genres
as a code per row into the distinct genre sets (a catalog repeats a few sets many times), and
years and versions as arrays; `table[row]` builds the `MovieMeta` of one row when a request
looks at it. The arrays are exactly what a snapshot stores, so loading one is a few slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, overload

import numpy as np

NO_YEAR = 0  # years are 1800..2200 (validate_movie), so 0 stands for "unknown"


class MovieMeta(NamedTuple):
    """One movie as a response shows it (a tuple: built per row a request looks at)."""

    title: str
    genres: tuple[str, ...]
    year: int | None
    version: int = 0


def _terminated(items: Iterable[str]) -> tuple[bytes, np.ndarray]:
    """UTF-8, each item followed by a newline, and where each starts (one extra: the end)."""
    encoded = [item.encode() + b"\n" for item in items]
    if any(b"\n" in item[:-1] for item in encoded):
        raise ValueError("a text holds a newline")
    starts = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(item) for item in encoded], out=starts[1:])
    return b"".join(encoded), starts


def _starts_of(blob: bytes) -> np.ndarray:
    ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == ord("\n")) + 1
    return np.concatenate([np.zeros(1, np.int64), ends])


class Texts(Sequence[str]):
    """Many short strings as one newline-terminated UTF-8 blob, decoded one at a time: a
    million Python strings took 0.3 to 0.6 s to split out of a file here (and tens of MB); a
    lookup costs ~0.3 µs."""

    __slots__ = ("_starts", "blob")

    def __init__(self, blob: bytes, starts: np.ndarray) -> None:
        if int(starts[0]) != 0 or int(starts[-1]) != len(blob) or np.any(np.diff(starts) < 1):
            raise ValueError("text offsets do not span the blob")
        self.blob = blob
        self._starts = starts

    @classmethod
    def of(cls, items: Iterable[str]) -> Texts:
        return cls(*_terminated(items))

    @classmethod
    def from_blob(cls, blob: bytes) -> Texts:
        """Newline-terminated texts (a snapshot section): the offsets are found, not stored."""
        return cls(blob, _starts_of(blob))

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return self.as_list()[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        start, end = self._starts[index : index + 2].tolist()
        return self.blob[start : end - 1].decode()

    def as_list(self) -> list[str]:
        return self.blob.decode().split("\n")[:-1] if len(self) else []


class MetaTable(Sequence[MovieMeta]):
    """The metadata of a base's rows; immutable, like the base.

    `titles` holds every title followed by a newline (the store refuses control characters, so
    a title cannot hold one); `starts` has one more entry than rows, the last is `len(titles)`.
    """

    __slots__ = ("_rows", "genre_sets", "titles")

    def __init__(
        self,
        titles: bytes,
        starts: np.ndarray,
        genre_sets: Sequence[tuple[str, ...]],
        genre_codes: np.ndarray,
        years: np.ndarray,
        versions: np.ndarray,
    ) -> None:
        count = len(genre_codes)
        if len(starts) != count + 1 or len(years) != count or len(versions) != count:
            raise ValueError("metadata columns do not have one entry per movie")
        Texts(titles, starts)  # checks the offsets
        if count and not 0 <= int(genre_codes.min()) <= int(genre_codes.max()) < len(genre_sets):
            raise ValueError("a genre code points past the genre sets")
        self.titles = titles
        self.genre_sets = tuple(genre_sets)
        # One row of Python ints per movie in one call: a third of the time of five reads.
        self._rows = np.empty((count, 5), np.int64)
        self._rows[:, 0] = starts[:-1]
        self._rows[:, 1] = starts[1:]
        self._rows[:, 2] = genre_codes
        self._rows[:, 3] = years
        self._rows[:, 4] = versions

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], self._rows[:, 1]]).astype(np.int64)

    @property
    def genre_codes(self) -> np.ndarray:
        return self._rows[:, 2].astype(np.int32)

    @property
    def years(self) -> np.ndarray:
        """NO_YEAR where unknown."""
        return self._rows[:, 3].astype(np.int32)

    @property
    def versions(self) -> np.ndarray:
        return self._rows[:, 4].copy()

    @classmethod
    def of(cls, metas: Iterable[MovieMeta]) -> MetaTable:
        metas = list(metas)
        titles, starts = _terminated(m.title for m in metas)
        codes: dict[tuple[str, ...], int] = {}
        genre_codes = np.array([codes.setdefault(m.genres, len(codes)) for m in metas], np.int32)
        return cls(
            titles,
            starts,
            list(codes),
            genre_codes,
            np.array([NO_YEAR if m.year is None else m.year for m in metas], np.int32),
            np.array([m.version for m in metas], np.int64),
        )

    @classmethod
    def from_titles_blob(
        cls,
        titles: bytes,
        genre_sets: Sequence[tuple[str, ...]],
        genre_codes: np.ndarray,
        years: np.ndarray,
        versions: np.ndarray,
    ) -> MetaTable:
        """From newline-terminated titles: the offsets are found, not stored."""
        return cls(titles, _starts_of(titles), genre_sets, genre_codes, years, versions)

    def __len__(self) -> int:
        return len(self._rows)

    def title(self, row: int) -> str:
        start, end = self._rows[row, :2].tolist()
        return self.titles[start : end - 1].decode()

    def all_titles(self) -> list[str]:
        return self.titles.decode().split("\n")[:-1] if len(self) else []

    def years_of(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The years of these rows, or of every row (NO_YEAR where unknown)."""
        years: np.ndarray = self._rows[:, 3] if rows is None else self._rows[rows, 3]
        return years

    def with_any_genre(self, genres: frozenset[str], rows: np.ndarray | None = None) -> np.ndarray:
        """Which of these rows, or of every row, have at least one of `genres` (one test per
        distinct set)."""
        sets = np.array([not genres.isdisjoint(s) for s in self.genre_sets], bool)
        found: np.ndarray = sets[self._rows[:, 2] if rows is None else self._rows[rows, 2]]
        return found

    def distinct_genres(self) -> set[str]:
        counts = np.bincount(self._rows[:, 2], minlength=len(self.genre_sets))
        return {g for code in np.flatnonzero(counts).tolist() for g in self.genre_sets[code]}

    @overload
    def __getitem__(self, row: int) -> MovieMeta: ...

    @overload
    def __getitem__(self, row: slice) -> Sequence[MovieMeta]: ...

    def __getitem__(self, row: int | slice) -> MovieMeta | Sequence[MovieMeta]:
        if isinstance(row, slice):
            return self.take(np.arange(len(self))[row])
        start, end, code, year, version = self._rows[row].tolist()
        return MovieMeta(
            self.titles[start : end - 1].decode(),
            self.genre_sets[code],
            None if year == NO_YEAR else year,
            version,
        )

    def __iter__(self) -> Iterator[MovieMeta]:
        sets = self.genre_sets
        columns = self._rows[:, 2:].tolist()
        for title, (code, year, version) in zip(self.all_titles(), columns, strict=True):
            yield MovieMeta(title, sets[code], None if year == NO_YEAR else year, version)

    def take(self, rows: np.ndarray) -> MetaTable:
        """The table of these rows, in this order (compaction keeps the live rows)."""
        picked = self._rows[np.asarray(rows, np.int64)]
        blob = self.titles
        titles = b"".join([blob[a:b] for a, b in picked[:, :2].tolist()])
        starts = np.zeros(len(picked) + 1, np.int64)
        np.cumsum(picked[:, 1] - picked[:, 0], out=starts[1:])
        return MetaTable(titles, starts, self.genre_sets, picked[:, 2], picked[:, 3], picked[:, 4])

    def extended(self, metas: Sequence[MovieMeta]) -> MetaTable:
        """This table followed by `metas` (compaction appends the delta)."""
        if not metas:
            return self
        more = MetaTable.of(metas)
        codes = {sets: code for code, sets in enumerate(self.genre_sets)}
        remap = np.array([codes.setdefault(s, len(codes)) for s in more.genre_sets], np.int64)
        return MetaTable(
            self.titles + more.titles,
            np.concatenate([self.starts, more.starts[1:] + len(self.titles)]),
            list(codes),
            np.concatenate([self.genre_codes, remap[more.genre_codes]]),
            np.concatenate([self.years, more.years]),
            np.concatenate([self.versions, more.versions]),
        )

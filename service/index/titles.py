"""Title search over what this replica has indexed, from memory.

A `TitleIndex` is built once per FAISS base (off the event loop, cached by the base's identity)
and maps normalised title tokens (and the year) to rows; the live index's small delta of recent
upserts is scanned per query and its tombstones mask base rows. So a movie a webhook just added
is searchable as soon as the refresher published the live index that holds it, on every replica,
and a deleted one disappears at the same moment, without rebuilding anything.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import re
import unicodedata
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from service.index.columns import NO_YEAR, Texts
from service.index.live import BaseIndex, LiveIndex, MovieMeta

MAX_QUERY_TOKENS = 8
_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'Amélie' and 'AMELIE' both become 'amelie'."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).split())


def tokens_of(normalized_title: str, year: int | None) -> list[str]:
    """What a title search matches: the normalised title's words, and the year."""
    words = normalized_title.split()
    return [*words, str(year)] if year is not None else words


@dataclass(frozen=True, slots=True)
class Hit:
    movie_id: str
    meta: MovieMeta


def _rank(query: str, title: str) -> tuple[int, int, str]:
    """Exact title first, then titles starting with the query, then shorter titles."""
    return (0 if title == query else 1 if title.startswith(query) else 2, len(title), title)


class _InOrder(Sequence[str]):
    """`texts` read in the order of `order` (bisect reads ~20 of a million, nothing is copied)."""

    def __init__(self, texts: Texts, order: np.ndarray) -> None:
        self._texts = texts
        self._order = order

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self._texts[int(i)] for i in self._order[index]]
        return self._texts[int(self._order[index])]


class TitleIndex:
    """Postings of title tokens over one base, in NumPy so a common word costs milliseconds.

    Rows are numbered by rank (shorter normalised title first, then alphabetical): a posting is
    a sorted array of ranks, so the best matches of a query are its smallest ranks.
    """

    def __init__(self, base: BaseIndex) -> None:
        titles = [normalize(title) for title in base.meta.all_titles()]
        years = base.meta.years.tolist()
        order = sorted(range(len(titles)), key=lambda row: (len(titles[row]), titles[row]))
        by_rank = [titles[row] for row in order]
        postings: dict[str, list[int]] = defaultdict(list)
        for rank, row in enumerate(order):
            year = years[row]
            for token in dict.fromkeys(tokens_of(by_rank[rank], None if year == NO_YEAR else year)):
                postings[token].append(rank)
        self._set(
            Texts.of(by_rank),
            np.asarray(order, dtype=np.int64),
            np.asarray(sorted(range(len(by_rank)), key=by_rank.__getitem__), dtype=np.int64),
            {t: np.asarray(r, dtype=np.int64) for t, r in postings.items()},
            base.meta.distinct_genres(),
        )

    def _set(
        self,
        titles: Texts,
        row_at: np.ndarray,
        alphabetical: np.ndarray,
        postings: dict[str, np.ndarray],
        genres: Iterable[str],
    ) -> None:
        self.titles = titles  # normalised, by rank
        self.row_at = row_at  # rank -> row of the base
        self._postings = postings
        self._tokens = sorted(postings)
        self._alphabetical = alphabetical  # ranks in title order
        self._alpha_titles = _InOrder(titles, alphabetical)
        self.genres = frozenset(genres)

    def parts(self) -> dict[str, np.ndarray | list[str] | Texts]:
        """What rebuilds this index without normalising or sorting (a snapshot file)."""
        tokens = self._tokens
        sizes = np.array([len(self._postings[t]) for t in tokens], np.int64)
        postings = (
            np.concatenate([self._postings[t] for t in tokens]) if tokens else np.zeros(0)
        ).astype(np.int32)  # ranks < 2**31: half the bytes on disk
        return {
            "titles": self.titles,
            "row_at": self.row_at,
            "alphabetical": self._alphabetical,
            "tokens": tokens,
            "sizes": sizes,
            "postings": postings,
            "genres": sorted(self.genres),
        }

    @classmethod
    def from_parts(
        cls,
        titles: Texts,
        row_at: np.ndarray,
        alphabetical: np.ndarray,
        tokens: list[str],
        sizes: np.ndarray,
        postings: np.ndarray,
        genres: list[str],
    ) -> TitleIndex:
        if len(row_at) != len(titles) or len(alphabetical) != len(titles):
            raise ValueError("title index parts do not match the title count")
        if len(sizes) != len(tokens) or int(sizes.sum()) != len(postings):
            raise ValueError("title index postings do not match their tokens")
        ranks = np.asarray(postings, np.int64)
        ends = np.cumsum(sizes).tolist()
        starts = [0, *ends[:-1]]
        index = cls.__new__(cls)
        index._set(
            titles,
            np.asarray(row_at, np.int64),
            np.asarray(alphabetical, np.int64),
            {t: ranks[a:b] for t, a, b in zip(tokens, starts, ends, strict=True)},
            genres,
        )
        return index

    def _prefixed(self, word: str, head: int | None = None) -> np.ndarray:
        """Ranks of titles with a token starting with `word`, sorted and unique (the `head`
        smallest of each token's, enough when no other word has to intersect)."""
        start = bisect.bisect_left(self._tokens, word)
        end = bisect.bisect_left(self._tokens, word + "\U0010ffff", start)
        parts = [self._postings[t][:head] for t in self._tokens[start:end]]
        if not parts:
            return np.empty(0, np.int64)
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))

    def ranks(self, query: str, words: Sequence[str], limit: int) -> list[int]:
        """Up to `limit` ranks, best first: exact title, title starting with the query, others."""
        found = self._prefixed(words[0], limit if len(words) == 1 else None)
        for word in words[1:]:
            if not len(found):
                return []
            found = np.intersect1d(found, self._prefixed(word), assume_unique=True)
        start = bisect.bisect_left(self._alpha_titles, query)
        end = bisect.bisect_left(self._alpha_titles, query + "\U0010ffff", start)
        starting = np.sort(self._alphabetical[start:end])
        # Both arrays are in rank order, which agrees with `_rank` inside each tier, so the
        # first `limit` of each hold the overall best `limit`.
        best = dict.fromkeys([*starting[:limit].tolist(), *found[:limit].tolist()])
        return sorted(best, key=lambda rank: _rank(query, self.titles[rank]))[:limit]


_built: weakref.WeakKeyDictionary[BaseIndex, TitleIndex] = weakref.WeakKeyDictionary()
_building: weakref.WeakKeyDictionary[BaseIndex, asyncio.Future[TitleIndex]] = (
    weakref.WeakKeyDictionary()
)


def remember(base: BaseIndex, index: TitleIndex) -> None:
    """Use `index` as `base`'s title index (read from a snapshot file), so nothing rebuilds it."""
    _built[base] = index


def built(base: BaseIndex) -> TitleIndex | None:
    return _built.get(base)


class TitleIndexBuilding(Exception):
    """The title index of a new base (after a compaction or resync) is still being built."""


async def title_index(base: BaseIndex, wait: float | None = None) -> TitleIndex:
    """The base's title index; the first caller starts building it in a thread.

    `wait` bounds how long a caller waits for a build in progress (None: until done, as the
    startup warm-up does): a request never hangs on it, it gets `TitleIndexBuilding`.
    """
    ready = _built.get(base)
    if ready is not None:
        return ready
    pending = _building.get(base)
    if pending is None:
        pending = asyncio.ensure_future(asyncio.to_thread(TitleIndex, base))
        _building[base] = pending

        def done(future: asyncio.Future[TitleIndex]) -> None:
            _building.pop(base, None)
            if not future.cancelled() and future.exception() is None:
                _built[base] = future.result()

        pending.add_done_callback(done)
    try:
        return await asyncio.wait_for(asyncio.shield(pending), wait)
    except TimeoutError:
        raise TitleIndexBuilding(f"the title index of {len(base):,} movies is building") from None


def _matches(words: Sequence[str], meta: MovieMeta) -> bool:
    tokens = tokens_of(normalize(meta.title), meta.year)
    return all(any(t.startswith(w) for t in tokens) for w in words)


async def search_titles(
    live: LiveIndex, query: str, limit: int, wait: float | None = None
) -> list[Hit]:
    """Live movies whose title words (or year) start with every word of `query`, best first."""
    normalized = normalize(query)
    words = normalized.split()[:MAX_QUERY_TOKENS]
    if not words:
        return []
    index = await title_index(live.base, wait)
    base = live.base
    # Ask for more than `limit`: tombstoned rows (deleted or replaced by the delta) drop out.
    wanted = limit + min(len(live.tombstones), 1000)
    ranked = [
        (_rank(normalized, index.titles[rank]), base.ids[row], base.meta[row])
        for rank in index.ranks(normalized, words, wanted)
        if base.ids[row := int(index.row_at[rank])] not in live.tombstones
    ]
    ranked += [
        (_rank(normalized, normalize(e.meta.title)), mid, e.meta)
        for mid, e in live.delta.items()
        if _matches(words, e.meta)
    ]
    best = heapq.nsmallest(limit, ranked, key=lambda item: (item[0], item[1]))
    return [Hit(mid, meta) for _, mid, meta in best]


async def genres_of(live: LiveIndex) -> list[str]:
    """Every genre of the indexed catalog (for the page's filter); the delta's alone while the
    base's title index is still building, so a status poll never waits for it."""
    extra = {g for e in live.delta.values() for g in e.meta.genres}
    try:
        index = await title_index(live.base, wait=0)
    except TitleIndexBuilding:
        return sorted(extra)
    return sorted(index.genres | extra)

"""Title search over what this replica has indexed, from memory.

A `TitleIndex` is built once per FAISS base (off the event loop, cached by the base's identity)
and maps normalised title tokens (and the year) to rows; the snapshot's small delta of recent
upserts is scanned per query and its tombstones mask base rows. So a movie a webhook just added
is searchable as soon as the refresher published the snapshot that holds it, on every replica,
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
from collections.abc import Sequence
from dataclasses import dataclass

from service.index import BaseIndex, MovieMeta, Snapshot

MAX_QUERY_TOKENS = 8
_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'Amélie' and 'AMELIE' both become 'amelie'."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).split())


def tokens_of(meta: MovieMeta) -> list[str]:
    words = normalize(meta.title).split()
    return [*words, str(meta.year)] if meta.year is not None else words


@dataclass(frozen=True, slots=True)
class Hit:
    movie_id: str
    meta: MovieMeta


def _rank(query: str, title: str) -> tuple[int, int, str]:
    """Exact title first, then titles starting with the query, then shorter titles."""
    return (0 if title == query else 1 if title.startswith(query) else 2, len(title), title)


class TitleIndex:
    """Token -> rows of one base, with a sorted token list so every query word is a prefix."""

    def __init__(self, base: BaseIndex) -> None:
        rows: dict[str, list[int]] = defaultdict(list)
        genres: set[str] = set()
        self.titles = [normalize(meta.title) for meta in base.meta]
        for row, meta in enumerate(base.meta):
            for token in set(tokens_of(meta)):
                rows[token].append(row)
            genres.update(meta.genres)
        self._rows = dict(rows)
        self._tokens = sorted(self._rows)
        self.genres = frozenset(genres)

    def rows_matching(self, words: Sequence[str]) -> set[int]:
        """Rows whose tokens start with every word (each word may match a different token)."""
        found: set[int] | None = None
        for word in words:
            start = bisect.bisect_left(self._tokens, word)
            rows: set[int] = set()
            for token in self._tokens[start:]:
                if not token.startswith(word):
                    break
                rows.update(self._rows[token])
            found = rows if found is None else found & rows
            if not found:
                return set()
        return found or set()


_built: weakref.WeakKeyDictionary[BaseIndex, TitleIndex] = weakref.WeakKeyDictionary()
_building: weakref.WeakKeyDictionary[BaseIndex, asyncio.Future[TitleIndex]] = (
    weakref.WeakKeyDictionary()
)


async def title_index(base: BaseIndex) -> TitleIndex:
    """The base's title index; the first caller builds it in a thread, others wait for it."""
    ready = _built.get(base)
    if ready is not None:
        return ready
    pending = _building.get(base)
    if pending is None:
        pending = asyncio.ensure_future(asyncio.to_thread(TitleIndex, base))
        _building[base] = pending
    index = await asyncio.shield(pending)
    _built[base] = index
    _building.pop(base, None)
    return index


def _matches(words: Sequence[str], meta: MovieMeta) -> bool:
    tokens = tokens_of(meta)
    return all(any(t.startswith(w) for t in tokens) for w in words)


async def search_titles(snapshot: Snapshot, query: str, limit: int) -> list[Hit]:
    """Live movies whose title words (or year) start with every word of `query`, best first."""
    normalized = normalize(query)
    words = normalized.split()[:MAX_QUERY_TOKENS]
    if not words:
        return []
    index = await title_index(snapshot.base)
    base = snapshot.base
    ranked = [
        (_rank(normalized, index.titles[row]), base.ids[row], base.meta[row])
        for row in index.rows_matching(words)
        if base.ids[row] not in snapshot.tombstones
    ]
    ranked += [
        (_rank(normalized, normalize(e.meta.title)), mid, e.meta)
        for mid, e in snapshot.delta.items()
        if _matches(words, e.meta)
    ]
    best = heapq.nsmallest(limit, ranked, key=lambda item: (item[0], item[1]))
    return [Hit(mid, meta) for _, mid, meta in best]


async def genres_of(snapshot: Snapshot) -> list[str]:
    """Every genre of the indexed catalog (for the page's filter)."""
    index = await title_index(snapshot.base)
    extra = {g for e in snapshot.delta.values() for g in e.meta.genres}
    return sorted(index.genres | extra)

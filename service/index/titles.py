"""Title search over what this replica has indexed, from memory.

A `TitleIndex` is built once per FAISS base (off the event loop, cached by the base's identity)
and maps normalised title tokens (and the year) to rows; the live index's small delta of recent
upserts is scanned per query and its tombstones mask base rows. So a movie a webhook just added
is searchable as soon as the refresher published the live index that holds it, on every replica,
and a deleted one disappears at the same moment, without rebuilding anything.

The work of one query is bounded, whatever it asks (`plan`, then `TitleSearch.run`):

- Repeated words count once, and a word that starts another word of the query is dropped
  (a title word starting with "story" starts with "st" too).
- Titles starting with the whole query come from a tree of minimums over the titles in
  alphabetical order: the best few of a million are found without sorting the million.
- The other matches start from the query's rarest word (the fewest postings); the other words,
  rarest first, only filter its candidates, in rank order, until enough are found. At most
  `MAX_CANDIDATES` of its postings are read, the best-ranked ones, fewer when many words filter
  them, and the work is metered as it goes up to `MAX_WORK`: past that cap the answer is the
  best of what was examined (`Work.capped`), exact whenever `limit` matches were among them.
- What a query will cost is estimated before any posting is read (`TitleQuery.cost`), so a
  caller can keep a cheap one on the event loop and send a costly one to a worker thread.
- A word shorter than `MIN_PREFIX` is a prefix like any other while few title words start with
  it (at most `SHORT_PREFIX_TOKENS`, `MAX_CANDIDATES` postings). Past that (one or two letters
  start hundreds of title words in MovieLens' 9,742 titles, thousands in a large catalog) it
  never supplies candidates: beside another word it filters that word's candidates as a prefix
  ("the lord of the r" finds the film); in a query of such words only ("t", "19", "s t") they
  are whole words, so it matches titles starting with it, then titles having those words.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import heapq
import re
import unicodedata
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import overload

import numpy as np

from service.index.columns import NO_YEAR, Texts
from service.index.live import BaseIndex, LiveIndex, MovieMeta

MAX_QUERY_TOKENS = 8  # distinct words of a query that count
MIN_PREFIX = 3  # shorter words are prefixes only while cheap (see the module docstring)
SHORT_PREFIX_TOKENS = 64
# What a search costs, in steps of ~10 ns (measured on this machine, whose cores are shared).
_CALL = 200  # Python and NumPy calls on one posting list (~2 µs)
_LOOKUP = 5  # one candidate searched for in one posting list (~50 ns)
_SORT = 15  # one posting merged by sorting (~150 ns)
_MARK = 13  # tenths of a step: one posting merged by marking it among every title
_TEXT = 70  # one title read and searched for a word (~0.7 µs)
_TREE = 1250  # one title taken from the tree of minimums (~12 µs)
MAX_WORK = 1_000_000  # ~10 ms: a search stops there, fewer candidates read when each costs more
LOOP_WORK = 50_000  # ~0.5 ms: a search estimated above it runs in a worker thread
MAX_CANDIDATES = 100_000  # postings of the rarest word read per query, at most
_MIN_CANDIDATES = 4096  # ... and at least, however many words filter them
_MAX_UNION = 10_000  # postings of a filter word merged into one list, at most
_SKIPPED = 1000  # tombstoned titles starting with the query passed over, at most
_SMALL_RANGE = 2048  # titles starting with the query sorted outright; more: the tree
_FIRST_CHUNK = 256  # candidates filtered at once, doubling up to _LAST_CHUNK
_LAST_CHUNK = 4096
_NONE = np.iinfo(np.int32).max
_NON_WORD = re.compile(r"[^\w]+")

Skip = Callable[[int], bool]  # base row -> True when it must not be answered (a tombstone)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: 'Amélie' and 'AMELIE' both become 'amelie'."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).split())


def tokens_of(normalized_title: str, year: int | None) -> list[str]:
    """What a title search matches: the normalised title's words, and the year."""
    words = normalized_title.split()
    return [*words, str(year)] if year is not None else words


def distinct_words(words: Iterable[str]) -> list[str]:
    """The words of a query that count: the first `MAX_QUERY_TOKENS` distinct ones."""
    return list(dict.fromkeys(words))[:MAX_QUERY_TOKENS]


@dataclass(frozen=True, slots=True)
class Hit:
    movie_id: str
    meta: MovieMeta


@dataclass(frozen=True, slots=True)
class Work:
    """What one search examined: posting entries read (the rarest word's, and those of the
    words filtered by membership), candidate titles checked, and whether a cap cut it short."""

    postings: int
    candidates: int
    capped: bool


@dataclass(frozen=True, slots=True)
class _Way:
    """How a query word filters candidates ("lookup": a binary search in each of its posting
    lists, "union": one search in their union, "text": the titles read), its steps before the
    first candidate and per candidate, and the share of the candidates that reach it."""

    term: _Term
    name: str
    before: int
    each: int
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class Found:
    ranks: list[int]  # best first
    work: Work


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


class _Minimums:
    """The values of any range of an array in ascending order, without sorting the range: a
    tree of minimums (two int32 a value), read ~2 log2(n) nodes per value taken."""

    def __init__(self, values: np.ndarray) -> None:
        size = 1 << max(0, len(values) - 1).bit_length()
        tree = np.full(2 * size, _NONE, np.int32)
        tree[size : size + len(values)] = values
        level = size
        while level > 1:
            half = level // 2
            tree[half:level] = np.minimum(
                tree[level : 2 * level : 2], tree[level + 1 : 2 * level : 2]
            )
            level = half
        self._tree = tree
        self._size = size

    def ascending(self, lo: int, hi: int) -> Iterator[int]:
        tree, size = self._tree, self._size
        heap: list[tuple[int, int]] = []
        lo, hi = lo + size, hi + size
        while lo < hi:  # the nodes that exactly cover [lo, hi)
            if lo & 1:
                heap.append((int(tree[lo]), lo))
                lo += 1
            if hi & 1:
                hi -= 1
                heap.append((int(tree[hi]), hi))
            lo, hi = lo >> 1, hi >> 1
        heapq.heapify(heap)
        while heap:
            value, node = heapq.heappop(heap)
            if node >= size:
                yield value
                continue
            for child in (2 * node, 2 * node + 1):
                if (low := int(tree[child])) != _NONE:
                    heapq.heappush(heap, (low, child))


@dataclass(frozen=True, slots=True)
class _Term:
    """A query word and its tokens, `TitleIndex._tokens[start:end]` (one, or none, when the
    word must be `whole`); `source`: whether it may supply the candidates."""

    word: str
    whole: bool
    start: int
    end: int
    postings: int
    source: bool = True

    @property
    def tokens(self) -> int:
        return self.end - self.start


class TitleIndex:
    """Postings of title tokens over one base, in NumPy so a common word costs milliseconds.

    Rows are numbered by rank (shorter normalised title first, then alphabetical): a posting is
    a sorted array of ranks, so the best matches of a query are its smallest ranks.
    """

    _years: np.ndarray | None  # by rank, for words that may be a year (after `know_years`)

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
        self._years = np.asarray(base.meta.years, np.int32)[self.row_at]

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
        self._lists = [postings[t] for t in self._tokens]  # in token order
        sizes = np.array([len(p) for p in self._lists], np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])  # postings of tokens [a, b)
        self._alphabetical = alphabetical  # ranks in title order
        self._alpha_titles = _InOrder(titles, alphabetical)
        self._starting = _Minimums(alphabetical)
        self._years = None
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

    def know_years(self, base: BaseIndex) -> None:
        """Read the years of `base` (an index loaded from a snapshot file has none)."""
        if self._years is None:
            self._years = np.asarray(base.meta.years, np.int32)[self.row_at]

    def _term(self, word: str, whole: bool = False, source: bool = True) -> _Term:
        start = bisect.bisect_left(self._tokens, word)
        if whole:
            end = start + (start < len(self._tokens) and self._tokens[start] == word)
        else:
            end = bisect.bisect_left(self._tokens, word + "\U0010ffff", start)
        postings = int(self._offsets[end] - self._offsets[start])
        return _Term(word, whole, start, end, postings, source)

    def _terms(self, words: Sequence[str], cap: int) -> list[_Term]:
        """What each word must match (see the module docstring). A prefix that starts another
        word of the query adds nothing (a title word starting with "story" starts with "st"),
        so it is dropped; a whole word is kept ("to" does not imply the word "t")."""
        terms = [self._term(word) for word in distinct_words(words)]
        costly = [
            len(t.word) < MIN_PREFIX and (t.tokens > SHORT_PREFIX_TOKENS or t.postings > cap)
            for t in terms
        ]
        if all(costly):
            terms = [self._term(t.word, whole=True) for t in terms]
        else:
            terms = [
                replace(t, source=False) if c else t for t, c in zip(terms, costly, strict=True)
            ]
        return [
            t
            for t in terms
            if t.whole or not any(o.word != t.word and o.word.startswith(t.word) for o in terms)
        ]

    def plan(
        self, query: str, words: Sequence[str], limit: int, cap: int | None = None
    ) -> TitleQuery:
        """How `query` (normalised; `words`, its words) will be answered, and at what cost,
        before any posting is read: a few bisections. `cap`: `MAX_CANDIDATES` unless given."""
        cap = MAX_CANDIDATES if cap is None else cap
        return TitleQuery(self, query, self._terms(words, cap), limit, cap)

    def ranks(self, query: str, words: Sequence[str], limit: int) -> list[int]:
        """Up to `limit` ranks, best first: exact title, title starting with the query, others."""
        return self.plan(query, words, limit).run().ranks


class TitleQuery:
    """One query planned over a `TitleIndex`: `cost` (estimated steps) is known at once, before
    any posting is read; `run()` does the work."""

    def __init__(
        self, index: TitleIndex, query: str, terms: list[_Term], limit: int, cap: int
    ) -> None:
        self.index = index
        self.query = query
        self.words = [(t.word, t.whole) for t in terms]
        self.limit = limit
        starts = index._alpha_titles
        self._first = self._end = 0  # titles starting with the query: [first, end) of `starts`
        if terms:
            self._first = bisect.bisect_left(starts, query)
            self._end = bisect.bisect_left(starts, query + "\U0010ffff", self._first)
        span = self._end - self._first
        self.cost = 3 * span if span <= _SMALL_RANGE else _TREE * limit
        self._take = 0  # candidates read from the source, at most
        self._source: _Term | None = None
        self._filters: list[_Way] = []
        if not terms or any(t.postings == 0 for t in terms):
            return  # no title has every word
        source = min((t for t in terms if t.source), key=lambda t: (t.postings, t.tokens))
        titles = len(index.titles)
        wanted = min(source.postings, cap)
        # The rarest word first: each filters what the ones before let through (a share of
        # the candidates as large as its share of the titles, were words independent).
        share = 1.0
        ways = []
        for term in sorted(terms, key=lambda t: t.postings):
            if term is not source:
                ways.append(self._way(term, wanted, share))
                share *= term.postings / titles
        setup = sum(way.before for way in ways)
        per_candidate = sum(way.each * way.share for way in ways)
        merge = 0 if source.tokens == 1 else _MARK / 10  # per posting, past titles // 40
        budget = MAX_WORK - setup - (0 if source.tokens == 1 else titles // 40)
        self._take = max(
            min(wanted, _MIN_CANDIDATES), min(wanted, int(budget / (per_candidate + merge + 1)))
        )
        if not ways:  # every candidate matches: the best `limit`, and room for tombstones
            self._take = min(wanted, limit + _SKIPPED)
        self._source = source
        self._filters = ways
        read = self._take if source.tokens > 1 else 0
        self.cost += source.tokens * _CALL + _merge_cost(read, titles) + setup
        # Every candidate through the first filter, as if none matched: the loop's safe side.
        # Without a filter the first chunk holds the answer (tombstones aside).
        examined = self._take if ways else min(self._take, _FIRST_CHUNK)
        self.cost += int(examined * (ways[0].each if ways else 1))

    def _way(self, term: _Term, candidates: int, share: float) -> _Way:
        """The cheapest way to keep the candidates having `term`, when `share` of `candidates`
        reach it."""
        reach = candidates * share
        ways = [_Way(term, "lookup", term.tokens * _CALL, term.tokens * _LOOKUP, share)]
        if term.postings <= _MAX_UNION:
            merge = term.tokens * _CALL + _merge_cost(term.postings, len(self.index.titles))
            ways.append(_Way(term, "union", merge, _LOOKUP, share))
        if self.index._years is not None or not _may_be_year(term.word):
            ways.append(_Way(term, "text", 0, _TEXT, share))
        return min(ways, key=lambda way: way.before + way.each * reach)

    def run(self, skip: Skip | None = None) -> Found:
        """Up to `limit` ranks, best first: exact title, title starting with the query, others.
        `skip(row)`: rows not to answer (tombstones), passed over before the limit counts."""
        starting, examined, capped = self._starting(skip)
        matched, postings, candidates, cut = self._matched(skip)
        titles = self.index.titles
        best = sorted(
            dict.fromkeys([*starting, *matched]), key=lambda rank: _rank(self.query, titles[rank])
        )
        return Found(best[: self.limit], Work(postings, examined + candidates, capped or cut))

    def _kept(self, ranks: Iterable[int], skip: Skip | None, most: int) -> tuple[list[int], int]:
        """The first `limit` of `ranks` not skipped, and how many were looked at (`most`)."""
        kept: list[int] = []
        seen = 0
        row_at = self.index.row_at
        for rank in ranks:
            if seen == most or len(kept) == self.limit:
                break
            seen += 1
            if skip is None or not skip(int(row_at[rank])):
                kept.append(rank)
        return kept, seen

    def _starting(self, skip: Skip | None) -> tuple[list[int], int, bool]:
        """The best titles starting with the whole query (the exact title first)."""
        first, end = self._first, self._end
        if end - first <= _SMALL_RANGE:
            ordered: Iterable[int] = np.sort(self.index._alphabetical[first:end]).tolist()
        else:
            ordered = self.index._starting.ascending(first, end)
        most = self.limit + _SKIPPED
        kept, seen = self._kept(ordered, skip, most)
        return kept, seen, len(kept) < self.limit and seen == most < end - first

    def _matched(self, skip: Skip | None) -> tuple[list[int], int, int, bool]:
        """The best titles having every word: (ranks, postings read, candidates, capped).
        The work is metered as it goes, and stops at `MAX_WORK` whatever the estimate was."""
        source = self._source
        if source is None or self.limit == 0:
            return [], 0, 0, False
        candidates, postings, complete = self._source_ranks(source)
        spent = source.tokens * _CALL + _merge_cost(postings, len(self.index.titles))
        filters = []
        for way in self._filters:
            keep, read = self._filter(way)
            filters.append((keep, way.each))
            postings += read
            spent += way.before
        kept: list[int] = []
        done = 0
        chunk = _FIRST_CHUNK
        while done < len(candidates) and len(kept) < self.limit and spent < MAX_WORK:
            passing = candidates[done : done + chunk]
            done += len(passing)
            chunk = min(2 * chunk, _LAST_CHUNK)
            for keep, each in filters:  # the rarest word first: the fewest pass it
                spent += len(passing) * each
                passing = passing[keep(passing)]
            found, _ = self._kept(passing.tolist(), skip, len(passing))
            kept += found[: self.limit - len(kept)]
        if source.tokens == 1:  # its postings are the candidates, read as far as `done`
            postings += done
        cut = len(kept) < self.limit and (not complete or done < len(candidates))
        return kept, postings, done, cut

    def _source_ranks(self, source: _Term) -> tuple[np.ndarray, int, bool]:
        """The best ranks having `source` (sorted, at most `_take`), the postings merged for
        them (none from one token: a view of its list), and whether they are all of them."""
        lists = self.index._lists[source.start : source.end]
        take, titles = self._take, len(self.index.titles)
        if len(lists) == 1:
            return lists[0][:take], 0, source.postings <= take
        if source.postings <= take:
            return _union(lists, titles), source.postings, True
        sizes = np.array([len(p) for p in lists], np.int64)
        head = _water_level(sizes, take)
        ranks = _union([p[:head] for p in lists], titles)
        # Every rank up to the smallest last rank read of a list cut short is there.
        complete_to = min(int(p[head - 1]) for p in lists if len(p) > head)
        ranks = ranks[: np.searchsorted(ranks, complete_to, side="right")]
        return ranks, int(np.minimum(sizes, head).sum()), False

    def _filter(self, way: _Way) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
        """A mask of the candidates (a chunk) having `way.term`, and the postings it reads
        first."""
        term = way.term
        lists = self.index._lists[term.start : term.end]
        if way.name == "union":
            union = _union(lists, len(self.index.titles))
            return (lambda ranks: _member(ranks, union)), term.postings
        if way.name == "lookup":

            def lookup(ranks: np.ndarray) -> np.ndarray:
                mask = np.zeros(len(ranks), bool)
                for postings in lists:
                    mask |= _member(ranks, postings)
                return mask

            return lookup, 0
        return functools.partial(self._having, term), 0

    def _having(self, term: _Term, ranks: np.ndarray) -> np.ndarray:
        """Which titles of `ranks` have a word starting with `word` (or equal to it, whole), or
        a year that does: the titles themselves are read, not the word's postings."""
        titles, word = self.index.titles, term.word
        if term.whole:
            padded = f" {word} "
            mask = np.array([padded in f" {titles[r]} " for r in ranks.tolist()], bool)
        else:
            inside = f" {word}"
            mask = np.array(
                [(t := titles[r]).startswith(word) or inside in t for r in ranks.tolist()], bool
            )
        if _may_be_year(word) and self.index._years is not None:
            years = self.index._years[ranks]
            digits = len(word)
            if term.whole:
                mask |= (years == int(word)) & (digits == 4)
            else:
                mask |= (years != NO_YEAR) & (years // 10 ** (4 - digits) == int(word))
        return mask


def _may_be_year(word: str) -> bool:
    return word.isascii() and word.isdigit() and len(word) <= 4


def _union(lists: Sequence[np.ndarray], titles: int) -> np.ndarray:
    """The ranks of any of `lists`, sorted: merged by sorting, or by marking when they cover
    a large share of the `titles`."""
    if not lists:
        return np.empty(0, np.int64)
    if len(lists) == 1:
        return lists[0]
    total = sum(len(p) for p in lists)
    if total * _SORT <= _merge_cost(total, titles):
        return np.unique(np.concatenate(lists))
    marked = np.zeros(titles, bool)
    for postings in lists:
        marked[postings] = True
    return np.flatnonzero(marked)


def _merge_cost(postings: int, titles: int) -> int:
    """Steps to merge `postings` into one sorted list: by sorting, or by marking them."""
    return min(postings * _SORT, titles // 40 + postings * _MARK // 10)


def _member(ranks: np.ndarray, postings: np.ndarray) -> np.ndarray:
    """Which of `ranks` are in `postings` (sorted): a binary search each, nothing else read."""
    at = np.searchsorted(postings, ranks)
    found: np.ndarray = postings[np.minimum(at, len(postings) - 1)] == ranks
    return found


def _water_level(sizes: np.ndarray, budget: int) -> int:
    """The largest h (at least 1) with sum(min(size, h)) <= budget, for sizes summing past it."""
    ordered = np.sort(sizes)
    before = np.concatenate([[0], np.cumsum(ordered)[:-1]])
    levels = (budget - before) // (len(ordered) - np.arange(len(ordered)))
    return max(1, int(levels[int(np.argmax(levels < ordered))]))


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


@functools.lru_cache(maxsize=8192)  # the delta's titles, normalised once (compaction at ~2,000)
def _delta_tokens(title: str, year: int | None) -> tuple[str, tuple[str, ...]]:
    normalized = normalize(title)
    return normalized, tuple(tokens_of(normalized, year))


class TitleSearch:
    """A search of one live index, planned: `cheap` when it may run on the event loop (its
    estimated work is under `LOOP_WORK`), else the caller runs `run` in a worker thread."""

    def __init__(self, live: LiveIndex, query: TitleQuery) -> None:
        self.live = live
        self.query = query
        passed_over = _TREE * min(len(live.tombstones), _SKIPPED)
        self.cheap = query.cost + _TEXT * len(live.delta) + passed_over <= LOOP_WORK

    def run(self) -> list[Hit]:
        live, query = self.live, self.query
        if not query.words:
            return []
        base, tombstones = live.base, live.tombstones
        ids = base.ids
        skip = (lambda row: ids[row] in tombstones) if tombstones else None
        ranked = []
        for rank in query.run(skip).ranks:
            row = int(query.index.row_at[rank])
            ranked.append((_rank(query.query, query.index.titles[rank]), ids[row], base.meta[row]))
        for mid, entry in live.delta.items():
            title, tokens = _delta_tokens(entry.meta.title, entry.meta.year)
            if title.startswith(query.query) or _has_all(query.words, tokens):
                ranked.append((_rank(query.query, title), mid, entry.meta))
        best = heapq.nsmallest(query.limit, ranked, key=lambda item: (item[0], item[1]))
        return [Hit(mid, meta) for _, mid, meta in best]


def _has_all(words: Sequence[tuple[str, bool]], tokens: Sequence[str]) -> bool:
    """Whether `tokens` (a delta title's) have every (word, whole) of a query."""
    return all(
        word in tokens if whole else any(t.startswith(word) for t in tokens)
        for word, whole in words
    )


async def title_search(
    live: LiveIndex, query: str, limit: int, wait: float | None = None
) -> TitleSearch:
    """Plan a search of `live` for `query` (waiting up to `wait` for the title index)."""
    normalized = normalize(query)
    index = await title_index(live.base, wait)
    if index._years is None:  # a base loaded from a snapshot file: once, ~5 ms at 1M
        await asyncio.to_thread(index.know_years, live.base)
    return TitleSearch(live, index.plan(normalized, normalized.split(), limit))


async def search_titles(
    live: LiveIndex, query: str, limit: int, wait: float | None = None
) -> list[Hit]:
    """Live movies whose title words (or year) start with every word of `query`, best first
    (run here, on the caller's loop: the API runs expensive ones in a thread)."""
    if not normalize(query):
        return []
    return (await title_search(live, query, limit, wait)).run()


async def genres_of(live: LiveIndex) -> list[str]:
    """Every genre of the indexed catalog (for the page's filter); the delta's alone while the
    base's title index is still building, so a status poll never waits for it."""
    extra = {g for e in live.delta.values() for g in e.meta.genres}
    try:
        index = await title_index(live.base, wait=0)
    except TitleIndexBuilding:
        return sorted(extra)
    return sorted(index.genres | extra)

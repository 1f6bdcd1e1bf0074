"""The movie index: an immutable base FAISS index + a small delta + tombstones.

A request reads one `LiveIndex` reference and searches it; the refresher builds a new live index
for every change and swaps the reference, so nothing a request searches is ever mutated (FAISS
allows concurrent searches, not a search during an add or remove; HNSW cannot remove at all).
Compaction folds the delta into a new base off the request path.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import faiss
import numpy as np

from service.index.columns import MetaTable as MetaTable
from service.index.columns import MovieMeta as MovieMeta

if TYPE_CHECKING:
    from service.config import Settings

IndexKind = Literal["flat", "ivf"]
Accept = Callable[[str, "MovieMeta"], bool]
# At most this many admitted base rows are scored exactly, all of them, instead of searched:
# ~1 ms at 64 dimensions, and the answer is exact. Past it the filter passes a large enough
# share of the catalog that an ANN search a little wider than usual finds enough.
EXACT_ROWS = 50_000
# ANN rounds (each 4x wider) before a filtered search scores every admitted row instead.
MAX_ROUNDS = 3
SELECTIONS_KEPT = 32


@dataclass(frozen=True, eq=False)
class Selection:
    """The base rows a filter admits, known from the columns before any search: how selective
    it is decides how to search (nothing, every admitted row, or a wider ANN search)."""

    mask: np.ndarray  # bool per base row
    count: int
    rows: np.ndarray | None  # the admitted rows, when there are at most EXACT_ROWS

    @classmethod
    def of(cls, mask: np.ndarray) -> Selection:
        count = int(np.count_nonzero(mask))
        return cls(mask, count, np.flatnonzero(mask) if count <= EXACT_ROWS else None)


@dataclass(frozen=True, slots=True)
class IndexParams:
    """Exact search up to `ann_threshold` movies; above it IVF (inverted lists over k-means
    cells). IVF rather than HNSW: a base is rebuilt at every compaction, and IVF rebuilds in
    seconds by reusing its trained cells (HNSW at 1M: minutes).

    `ivf_nprobe` is where the cells searched per query start: each IVF build measures its
    recall@10 against exact search on sample queries and doubles nprobe until it reaches
    `ivf_recall_goal` (0 turns the measurement off). One fixed nprobe cannot hold recall across
    sizes, and the exact/IVF threshold is where exact search stops being cheaper than IVF at
    recall 0.99: both measured by bench/index.py (docs/benchmarks.md, docs/decisions/)."""

    ann_threshold: int = 20_000
    ivf_nprobe: int = 32
    ivf_recall_goal: float = 0.99
    ivf_cells_per_sqrt: float = 4.0  # nlist = 4 * sqrt(N): 4,000 cells at 1M
    train_points_per_cell: int = 40
    # What the cells hold, as a FAISS factory name: "Flat" (the float32 vectors), or a
    # compressed code ("SQ8", "SQfp16", "PQ32x4fs") whose best `ivf_rerank` x fetch candidates
    # are re-scored exactly against the base's float32 vectors (scores and order stay exact).
    # The service builds "Flat" (chosen by bench/index.py; snapshots persist Flat cells only).
    ivf_codes: str = "Flat"
    ivf_rerank: int = 4


CALIBRATION_QUERIES = 200
T = TypeVar("T")
Heavy = Callable[[Callable[[], Any]], Any]  # runs a long FAISS call and returns its result


def _here(call: Callable[[], T]) -> T:
    return call()


def index_params(settings: Settings) -> IndexParams:
    return IndexParams(ann_threshold=settings.ann_threshold, ivf_nprobe=settings.ivf_nprobe)


def set_threads(omp_threads: int) -> None:
    """One OpenMP thread: a single small query is ~2x slower with two (measured here)."""
    faiss.omp_set_num_threads(omp_threads)


@dataclass(frozen=True, eq=False)
class BaseIndex:
    """Built once, searched by many, never mutated."""

    ids: Sequence[str]
    vectors: np.ndarray
    meta: MetaTable  # a MovieMeta per row, built when asked for
    row_of: Mapping[str, int]
    faiss_index: Any  # faiss.IndexFlatIP or faiss.IndexIVFFlat (the stubs know only Index)
    kind: IndexKind
    recall: float = 1.0  # recall@10 vs exact measured at build (IVF); exact search is 1.0
    rerank: int = 0  # candidates per result re-scored exactly (IVF with PQ codes); 0: none
    _selections: dict[Hashable, Selection] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        vectors: np.ndarray,
        meta: Sequence[MovieMeta],
        params: IndexParams = IndexParams(),
        previous: BaseIndex | None = None,
        heavy: Heavy = _here,
        rows_of: BaseIndex | None = None,
    ) -> BaseIndex:
        """`previous`: a base whose trained IVF cells may be reused (compaction). `rows_of`: a
        base whose id list `ids` is (a model swap with no pending change): its id list and
        id -> row map are shared, not built again (1M Python objects fewer to build and free on
        a swap). `heavy` runs
        the FAISS calls that take seconds at 1M (training the cells, adding, the exact search
        of the recall calibration): they hold no GIL, so a caller may run them on a thread of
        lower CPU priority (`service/index/background.py`) while the Python parts stay here."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors) or len(meta) != len(ids):
            raise ValueError("ids, vectors and meta must have the same length")
        dim = vectors.shape[1] if vectors.size else 1
        index: faiss.Index
        kind: IndexKind
        if len(ids) > params.ann_threshold:
            index = _ivf(vectors, params, previous, heavy)
            kind = "ivf"
        else:
            index = faiss.IndexFlatIP(dim)
            kind = "flat"
        recall = 1.0
        rerank = params.ivf_rerank if kind == "ivf" and params.ivf_codes != "Flat" else 0
        if len(ids):
            heavy(lambda: index.add(vectors))
            if kind == "ivf" and params.ivf_recall_goal > 0:
                recall = _calibrate(index, vectors, params, rerank, heavy)
        shared = rows_of is not None and ids is rows_of.ids
        return cls(
            ids=rows_of.ids if shared and rows_of is not None else list(ids),
            vectors=vectors,
            meta=meta if isinstance(meta, MetaTable) else MetaTable.of(meta),
            row_of=rows_of.row_of
            if shared and rows_of is not None
            else {mid: row for row, mid in enumerate(ids)},
            faiss_index=index,
            kind=kind,
            recall=recall,
            rerank=rerank,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def genres(self) -> frozenset[str]:
        """Every genre some row has (~1 ms at 1M rows: a count per distinct genre set)."""
        return frozenset(self.meta.distinct_genres())

    def known_selection(self, key: Hashable) -> Selection | None:
        """The selection of `key` if it is kept, without finding it."""
        with self._lock:
            return self._selections.get(key)

    def selection(self, key: Hashable, mask_of: Callable[[MetaTable], np.ndarray]) -> Selection:
        """The rows a filter admits, `mask_of(meta)`, kept for the SELECTIONS_KEPT filters
        asked for last: a popular filter is found from the columns once per base, not per
        request (1 MB a filter at 1M rows)."""
        with self._lock:
            found = self._selections.pop(key, None)
            if found is not None:
                self._selections[key] = found  # the newest at the end
                return found
        found = Selection.of(mask_of(self.meta))
        with self._lock:
            self._selections[key] = found
            while len(self._selections) > SELECTIONS_KEPT:
                self._selections.pop(next(iter(self._selections)))
        return found

    def exhausted(self, fetch: int, widen: int) -> bool:
        """True when a search this wide already saw every movie."""
        if fetch < len(self.ids):
            return False
        return self.kind != "ivf" or self.faiss_index.nprobe * widen >= self.faiss_index.nlist

    def search(
        self, query: np.ndarray, fetch: int, widen: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top `fetch` rows; `widen` > 1 probes that many times more IVF cells (filters)."""
        fetch = min(fetch, len(self.ids))
        if fetch <= 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        nprobe = None
        if self.kind == "ivf" and widen > 1:
            nprobe = min(self.faiss_index.nlist, self.faiss_index.nprobe * widen)
        scores, rows = _search(
            self.faiss_index, self.vectors, query.reshape(1, -1), fetch, self.rerank, nprobe
        )
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]


def _search(
    index: Any,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    rerank: int,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS' top k; with `rerank`, its top k x rerank re-scored exactly and cut to k (-1 rows
    pad a short answer, as FAISS pads)."""
    extra: dict[str, Any] = {}
    if nprobe is not None:
        extra["params"] = faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]
    if not rerank:
        scores, rows = index.search(queries, k, **extra)
        return scores, rows
    _, candidates = index.search(queries, min(len(vectors), k * rerank), **extra)
    exact = np.einsum("qcd,qd->qc", vectors[np.maximum(candidates, 0)], queries)
    exact[candidates < 0] = -np.inf
    order = np.argsort(-exact, axis=1)[:, :k]
    rows = np.take_along_axis(candidates, order, axis=1)
    return np.take_along_axis(exact, order, axis=1).astype(np.float32), rows


def _ivf(
    vectors: np.ndarray, params: IndexParams, previous: BaseIndex | None, heavy: Heavy = _here
) -> Any:
    """An empty IVF index with trained cells: the previous base's if its size is close."""
    n, dim = vectors.shape
    if (
        previous is not None
        and previous.kind == "ivf"
        and previous.vectors.shape[1] == dim
        and 0.5 <= n / max(len(previous), 1) <= 2.0
    ):
        index = faiss.clone_index(previous.faiss_index)
        index.reset()
        return index
    nlist = max(1, min(65_536, n, int(params.ivf_cells_per_sqrt * np.sqrt(n))))
    codes = params.ivf_codes
    fresh: Any = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    sample_size = min(n, nlist * params.train_points_per_cell)
    sample = vectors[np.random.default_rng(0).choice(n, sample_size, replace=False)]
    heavy(lambda: fresh.train(sample))
    fresh.nprobe = params.ivf_nprobe
    return fresh


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of `vectors` with the top `k` inner products for each query, by exact search."""
    _, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return np.asarray(rows)


def recall_at_k(
    index: Any, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, rerank: int = 0
) -> float:
    """Recall@k of a FAISS `index` over `vectors` (k = `truth`'s columns): the share of each
    query's exact top k (`exact_neighbours`) its search finds, over all `queries`.

    The IVF build calibrates nprobe with it; bench/index.py and bench/serving.py report it."""
    k = truth.shape[1]
    _, found = _search(index, vectors, queries, k, rerank)
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return float(hits / truth.size)


def _calibrate(
    index: Any, vectors: np.ndarray, params: IndexParams, rerank: int, heavy: Heavy = _here
) -> float:
    """Set the least nprobe (from `ivf_nprobe` up, within an eighth) whose recall@10 vs exact
    reaches the goal on sample queries, and return that recall. Queries are catalog vectors
    plus noise in every direction, harder for IVF than a vector that sits inside one cell.

    At 1M this costs about one exact search per sample query (~1-2 s on one core), beside the
    ~10 s of building; a compaction pays it again, which keeps the promise as the catalog moves.
    """
    n, dim = vectors.shape
    rng = np.random.default_rng(1)
    count = min(CALIBRATION_QUERIES, n)
    queries = vectors[rng.choice(n, count, replace=False)] + 0.3 * rng.normal(size=(count, dim))
    queries = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True))
    queries = queries.astype(np.float32)
    truth = heavy(lambda: exact_neighbours(vectors, queries, min(10, n)))

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        return recall_at_k(index, vectors, queries, truth, rerank)

    # Double until the goal is met, then bisect between the last miss and the first hit to
    # within an eighth: 256 -> 192 cuts a quarter of the search at 1M.
    low, high = 0, min(params.ivf_nprobe, index.nlist)
    recall = recall_at(high)
    while recall < params.ivf_recall_goal and high < index.nlist:
        low, high = high, min(index.nlist, high * 2)
        recall = recall_at(high)
    while low and high - low > max(1, high // 8):
        middle = (low + high) // 2
        found = recall_at(middle)
        if found >= params.ivf_recall_goal:
            high, recall = middle, found
        else:
            low = middle
    index.nprobe = high
    return float(recall)


@dataclass(frozen=True, slots=True)
class DeltaEntry:
    vector: np.ndarray
    meta: MovieMeta
    seq: int


@dataclass(frozen=True, eq=False)
class LiveIndex:
    """What one request searches. `index_version` is the last change-log sequence applied."""

    base: BaseIndex
    index_version: int
    delta: Mapping[str, DeltaEntry] = field(default_factory=dict)
    tombstones: Mapping[str, int] = field(default_factory=dict)  # id -> seq; masks the base row
    _delta_ids: tuple[str, ...] = ()
    _delta_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    size: int = 0

    @classmethod
    def create(
        cls,
        base: BaseIndex,
        index_version: int,
        delta: Mapping[str, DeltaEntry] | None = None,
        tombstones: Mapping[str, int] | None = None,
    ) -> LiveIndex:
        delta = dict(delta or {})
        tombstones = {k: v for k, v in (tombstones or {}).items() if k in base.row_of}
        ids = tuple(delta)
        dim = base.vectors.shape[1] if base.vectors.ndim == 2 else 0
        matrix = (
            np.stack([delta[i].vector for i in ids]).astype(np.float32)
            if ids
            else np.zeros((0, dim), np.float32)
        )
        return cls(
            base=base,
            index_version=index_version,
            delta=delta,
            tombstones=tombstones,
            _delta_ids=ids,
            _delta_matrix=matrix,
            size=len(base) - len(tombstones) + len(ids),
        )

    # --- reads (request path) ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.size

    def __contains__(self, movie_id: str) -> bool:
        if movie_id in self.delta:
            return True
        return movie_id in self.base.row_of and movie_id not in self.tombstones

    def get(self, movie_id: str) -> tuple[np.ndarray, MovieMeta] | None:
        entry = self.delta.get(movie_id)
        if entry is not None:
            return entry.vector, entry.meta
        row = self.base.row_of.get(movie_id)
        if row is None or movie_id in self.tombstones:
            return None
        return self.base.vectors[row], self.base.meta[row]

    def vectors_of(self, movie_ids: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """The vectors of many movies in one gather ([n, dim]; zeros for a movie not live) and
        which are live: a request's history and candidates, without a row view and a stack
        per movie (~1 µs each, 200 a history)."""
        delta, row_of, tombstones = self.delta, self.base.row_of, self.tombstones
        if tombstones:
            listed = [row_of.get(mid, -1) if mid not in tombstones else -1 for mid in movie_ids]
        else:  # the common case: one C-level pass
            listed = list(map(row_of.get, movie_ids, itertools.repeat(-1, len(movie_ids))))
        rows = np.asarray(listed, np.int64)
        dim = self.base.vectors.shape[1] if self.base.vectors.ndim == 2 else 0
        if not len(rows):
            return np.zeros((0, dim), np.float32), []
        vectors = self.base.vectors[rows]
        missing = rows < 0
        vectors[missing] = 0.0
        if delta:
            for position, mid in enumerate(movie_ids):
                entry = delta.get(mid)
                if entry is not None:
                    vectors[position] = entry.vector
                    missing[position] = False
        return vectors, (~missing).tolist()

    def title(self, movie_id: str) -> str | None:
        """A live movie's title alone (no genres or year built)."""
        entry = self.delta.get(movie_id)
        if entry is not None:
            return entry.meta.title
        row = self.base.row_of.get(movie_id)
        if row is None or movie_id in self.tombstones:
            return None
        return self.base.meta.title(row)

    @functools.cached_property
    def genres(self) -> frozenset[str]:
        """Every genre of the base and the delta (a filter naming another matches nothing).
        A deleted base row's genres still count: harmless, and no scan per change."""
        return self.base.genres.union(g for e in self.delta.values() for g in e.meta.genres)

    def ids(self) -> list[str]:
        """Every live id (for checks and resync tests, not the request path)."""
        live = [i for i in self.base.ids if i not in self.tombstones]
        return live + list(self._delta_ids)

    def search(
        self,
        query: np.ndarray,
        k: int,
        accept: Accept | None = None,
        within: Selection | None = None,
        skip: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, float, MovieMeta]]:
        """Top-k live movies by inner product, best first, that `accept` admits (by id and
        metadata), that are among the base rows `within` selects (the same filter, on the
        base's columns), and that `skip` does not drop (by id alone: no metadata is built for a
        base row until it is among the k returned, ~0.6 us each).

        The work is bounded by the filter's selectivity: a filter no base row passes searches
        only the delta; one few rows pass scores exactly those rows; a broad one asks the ANN
        index for more than k (more the fewer pass) and widens at most MAX_ROUNDS times before
        scoring every admitted row.
        """
        query = np.asarray(query, dtype=np.float32)
        found: dict[str, tuple[float, MovieMeta | int]] = {}  # a base row's meta: its row
        if self._delta_ids:
            scores = self._delta_matrix @ query
            for mid, score in zip(self._delta_ids, scores.tolist(), strict=True):
                meta = self.delta[mid].meta
                if skip is not None and skip(mid):
                    continue
                if accept is None or accept(mid, meta):
                    found[mid] = (score, meta)
        if within is None or within.count > 0:
            rows = within.rows if within is not None else None
            if rows is None:
                rows = self._search_base(query, k, found, accept, within, skip)
            if rows is not None:
                self._score_rows(query, k, rows, found, accept, skip)
        best = sorted(found.items(), key=lambda item: -item[1][0])[:k]
        table = self.base.meta
        return [
            (mid, score, table[meta] if isinstance(meta, int) else meta)
            for mid, (score, meta) in best
        ]

    def _keep(
        self,
        scores: np.ndarray,
        rows: np.ndarray,
        found: dict[str, tuple[float, MovieMeta | int]],
        accept: Accept | None,
        skip: Callable[[str], bool] | None,
        enough: int | None = None,
    ) -> int:
        """Add the admitted base rows among `rows` to `found`; how many were added. `enough`:
        `rows` are best first (a search's answer), so once that many are admitted the rest
        cannot reach the top `enough` and are not looked at (a pool of 50 fetched 208 rows,
        each a Python step of ~0.5 µs)."""
        added = 0
        table = self.base.meta
        ids, tombstones = self.base.ids, self.tombstones
        for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
            mid = ids[row]
            if mid in tombstones or (skip is not None and skip(mid)):
                continue
            if accept is None or accept(mid, table[row]):
                found.setdefault(mid, (score, row))
                added += 1
                if added == enough:
                    break
        return added

    def _search_base(
        self,
        query: np.ndarray,
        k: int,
        found: dict[str, tuple[float, MovieMeta | int]],
        accept: Accept | None,
        within: Selection | None,
        skip: Callable[[str], bool] | None,
    ) -> np.ndarray | None:
        """The ANN search; the admitted rows to score exactly when it did not find k."""
        # Tombstones and filters are rare among the best matches: ask a little more than k and
        # widen only when too few survive (sizing by len(tombstones) cost 2.6x req/s at 5k).
        n = len(self.base)
        filtered = accept is not None or within is not None or skip is not None
        fetch = (k * 4 if filtered else k) + 8
        widen = 1
        if within is not None:  # expect one admitted row in every n / count fetched
            share = within.count / max(n, 1)
            fetch = min(n, int(fetch / share) + 1)
            widen = max(1, int(1 / share))
        for _ in range(MAX_ROUNDS):
            scores, rows = self.base.search(query, fetch, widen)
            if within is not None and len(rows):
                admitted = within.mask[rows]
                scores, rows = scores[admitted], rows[admitted]
            if self._keep(scores, rows, found, accept, skip, enough=k) >= k:
                return None
            if self.base.exhausted(fetch, widen):
                return None
            fetch = min(n, fetch * 4)
            widen *= 4
        return within.mask.nonzero()[0] if within is not None else np.arange(n)

    def _score_rows(
        self,
        query: np.ndarray,
        k: int,
        rows: np.ndarray,
        found: dict[str, tuple[float, MovieMeta | int]],
        accept: Accept | None,
        skip: Callable[[str], bool] | None,
    ) -> None:
        """Score every row of `rows` exactly and keep the best k admitted ones: the best
        `take` first, more only when tombstones and skips dropped too many."""
        scores = self.base.vectors[rows] @ query
        take = k + 8 + len(self.tombstones)
        while True:
            take = min(take, len(rows))
            top = np.argpartition(-scores, take - 1)[:take] if take < len(rows) else None
            order = np.arange(len(rows)) if top is None else top
            if self._keep(scores[order], rows[order], found, accept, skip) >= k or top is None:
                return
            take *= 4

    # --- writes (refresher) -----------------------------------------------------------------
    def with_changes(
        self,
        upserts: Iterable[tuple[str, np.ndarray, MovieMeta]],
        deletes: Iterable[str],
        index_version: int,
    ) -> LiveIndex:
        """A new live index with the changes applied at `index_version`; self is untouched."""
        delta = dict(self.delta)
        tombstones = dict(self.tombstones)
        for mid in deletes:
            delta.pop(mid, None)
            tombstones[mid] = index_version
        for mid, vector, meta in upserts:
            delta[mid] = DeltaEntry(np.asarray(vector, np.float32), meta, index_version)
            tombstones[mid] = index_version
        return LiveIndex.create(self.base, index_version, delta, tombstones)

    def live_items(self) -> tuple[list[str], np.ndarray, MetaTable]:
        """Everything live, for building the next base."""
        ids, metas, keep = self._live_rows()
        parts = [self.base.vectors[keep]] if keep else []
        if self._delta_ids:
            parts.append(self._delta_matrix)
        dim = self.base.vectors.shape[1]
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return ids, vectors, metas

    def live_catalog(self) -> tuple[Sequence[str], MetaTable]:
        """Every live movie's id and columns, without the vectors (a model swap replaces them):
        the base's own id list and table when nothing is pending."""
        if not self.tombstones and not self._delta_ids:
            return self.base.ids, self.base.meta
        ids, metas, _ = self._live_rows()
        return ids, metas

    def _live_rows(self) -> tuple[list[str], MetaTable, list[int]]:
        """Live ids and columns, and the base rows kept (the base's own table when all are)."""
        keep = [row for row, mid in enumerate(self.base.ids) if mid not in self.tombstones]
        ids = [self.base.ids[r] for r in keep] + list(self._delta_ids)
        kept = self.base.meta
        if len(keep) < len(self.base):
            kept = kept.take(np.array(keep, np.int64))
        metas = kept.extended([self.delta[i].meta for i in self._delta_ids])
        return ids, metas, keep

    def rebased(self, base: BaseIndex, built_from: LiveIndex) -> LiveIndex:
        """Swap in a base built from `built_from`, keeping what was applied since then."""
        since = built_from.index_version
        delta = {mid: e for mid, e in self.delta.items() if e.seq > since}
        tombstones = {mid: seq for mid, seq in self.tombstones.items() if seq > since}
        for mid, entry in delta.items():
            tombstones[mid] = entry.seq
        return LiveIndex.create(base, self.index_version, delta, tombstones)

    @property
    def pending(self) -> int:
        """How much compaction would fold away."""
        return len(self.delta) + len(self.tombstones)


def build_live_index(
    ids: Sequence[str],
    vectors: np.ndarray,
    meta: Sequence[MovieMeta],
    index_version: int,
    params: IndexParams = IndexParams(),
) -> LiveIndex:
    return LiveIndex.create(BaseIndex.build(ids, vectors, meta, params), index_version)

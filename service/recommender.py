"""The request path, free of HTTP: history -> user tower -> index search -> filter -> explain.

It reads the live index once per call, so a swap in the middle of a request is invisible.
The Lambda-style handler reuses it unchanged. Disliked movies (a `dislike`, or a rating at or
below the setting) are not read by the user tower; they push a wider pool away from themselves
(`service/rerank.py`), as does a diversity above 0 (MMR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from embeddings.weights import DISLIKE_MAX_RATING
from service import rerank
from service.index.columns import NO_YEAR, MetaTable
from service.index.live import LiveIndex, MovieMeta
from service.index.view import IndexView, Serving
from service.store.history import History

# "because you watched X" names a watch or a rating of at least this (of 5): a lukewarm 2.5 is
# not a reason a user would agree with, any more than a dislike is.
REASON_MIN_RATING = 3.0
# Why an item is in the list: near a history movie the user liked (`because` names it), chosen
# by the user vector with no liked movie to name ("popular with people like you"), or popular.
Reason = Literal["because", "people_like_you", "popular"]


@dataclass(frozen=True, slots=True)
class Filters:
    genres: frozenset[str] = frozenset()
    year_min: int | None = None
    year_max: int | None = None

    def admits(self, meta: MovieMeta) -> bool:
        if self.genres and not self.genres.intersection(meta.genres):
            return False
        if self.year_min is not None and (meta.year is None or meta.year < self.year_min):
            return False
        return not (self.year_max is not None and (meta.year is None or meta.year > self.year_max))

    @property
    def active(self) -> bool:
        return bool(self.genres) or self.year_min is not None or self.year_max is not None

    def mask(self, table: MetaTable, rows: np.ndarray | None = None) -> np.ndarray:
        """`admits` over many base rows (default: all) at once, from the columns: a few ms at
        1M rows, where a Python test per row would take seconds."""
        keep = np.ones(len(table) if rows is None else len(rows), bool)
        if self.genres:
            keep &= table.with_any_genre(self.genres, rows)
        if self.year_min is not None or self.year_max is not None:
            years = table.years_of(rows)
            keep &= years != NO_YEAR
            if self.year_min is not None:
                keep &= years >= self.year_min
            if self.year_max is not None:
                keep &= years <= self.year_max
        return keep


class UnknownGenres(ValueError):
    """A genre filter naming genres no movie has: a typo, answered with the known ones."""

    def __init__(self, unknown: Iterable[str], known: Iterable[str]) -> None:
        self.unknown = sorted(unknown)
        self.known = sorted(known)
        super().__init__(
            f"unknown genre(s) {', '.join(map(repr, self.unknown))}; known: {', '.join(self.known)}"
        )


@dataclass(frozen=True, slots=True)
class Item:
    movie_id: str
    meta: MovieMeta
    score: float
    because: tuple[str, str] | None  # (movie id, title) of the nearest liked history movie
    reason: Reason = "because"


@dataclass(frozen=True, slots=True)
class Result:
    strategy: Literal["personalized", "popular"]
    model_version: str
    index_version: int
    history_length: int
    items: list[Item]


class Recommender:
    """Reads the served index and model once per call (`IndexView.serving`): a model swap in
    the middle of a request is invisible."""

    def __init__(self, index: IndexView, dislike_max_rating: float = DISLIKE_MAX_RATING):
        self.index = index
        self.dislike_max_rating = dislike_max_rating

    def serving(self) -> Serving:
        serving = self.index.serving
        if serving is None:
            raise RuntimeError("the index is not built yet")
        return serving

    def live(self) -> LiveIndex:
        return self.serving().live

    def check(self, filters: Filters) -> None:
        """UnknownGenres unless `filters` name only genres some movie has: callers check
        before reading a history, so a typo costs nothing more."""
        self._check(self.live(), filters)

    @staticmethod
    def _check(live: LiveIndex, filters: Filters) -> None:
        if unknown := filters.genres - live.genres:
            raise UnknownGenres(unknown, live.genres)

    def quick(self, filters: Filters) -> bool:
        """Whether `recommend` with `filters` costs about what an unfiltered one does (~1-2 ms
        at 1M): no filter, or one whose selection is kept and passes none or few enough rows
        to score them all. Others find their selection or search wider: a worker thread's job,
        while a quick one is cheaper on the loop than the hop (a thread holding the GIL
        delays the loop by up to its 5 ms switch interval)."""
        if not filters.active:
            return True
        live = self.index.live
        known = live.base.known_selection(filters) if live is not None else None
        return known is not None and (known.count == 0 or known.rows is not None)

    def recommend(
        self,
        history: History,
        k: int,
        filters: Filters = Filters(),
        exclude_seen: bool = True,
        popular: bool = False,
        diversity: float = 0.0,
        max_per_genre: int | None = None,
        serving: Serving | None = None,
    ) -> Result:
        """`history` newest first; movies no longer in the index are skipped. Every retained
        event counts as seen, not only the ones the tower reads. `popular`: the popular
        movies whatever the history, and `serving`: another model with its own index (both
        an experiment's variants). `diversity` 0..1: MMR's weight
        on variety; `max_per_genre`: at most that many items share a genre (when the pool
        allows). Raises UnknownGenres."""
        serving = serving or self.serving()
        live, towers = serving.live, serving.towers
        self._check(live, filters)
        seen = set(history.movie_ids)
        used: list[int] = []  # positions in `history` of the events the tower reads
        reasons: list[str] = []  # liked movies the tower reads (titles found for the chosen)
        reason_rows: list[int] = []
        dislike_rows: list[int] = []
        disliked = history.disliked(self.dislike_max_rating).tolist()  # lists: read one by one
        liked = history.liked(REASON_MIN_RATING).tolist()
        taken: set[str] = set()
        length = towers.history_length
        matrix, present = live.vectors_of(history.movie_ids)  # one gather, no metadata built
        for position, movie_id in enumerate(history.movie_ids):
            if movie_id in taken:
                continue
            taken.add(movie_id)
            if not present[position]:
                continue
            if disliked[position]:
                if len(dislike_rows) < length:
                    dislike_rows.append(position)
                continue
            used.append(position)
            if liked[position]:
                reasons.append(movie_id)
                reason_rows.append(position)
            if len(used) == length:
                break
        rerank_pool = bool(dislike_rows) or diversity > 0 or max_per_genre is not None
        fetch = rerank.pool_size(k, max_per_genre is not None) if rerank_pool else k

        def accept(movie_id: str, meta: MovieMeta) -> bool:
            return not (exclude_seen and movie_id in seen) and filters.admits(meta)

        if not used or popular:
            strategy: Literal["personalized", "popular"] = "popular"
            hits = self._popular(live, towers.popular, fetch, accept)
        else:
            strategy = "personalized"
            user = towers.embed_user(matrix[used], history.weights(np.array(used)))
            hits = live.search(
                user,
                fetch,
                (lambda _, meta: filters.admits(meta)) if filters.active else None,
                live.base.selection(filters, filters.mask) if filters.active else None,
                seen.__contains__ if exclude_seen else None,
            )
        found_vectors = None
        if hits and (rerank_pool or (strategy == "personalized" and reasons)):
            found_vectors = live.vectors_of([mid for mid, _, _ in hits])[0]
        if rerank_pool and found_vectors is not None:
            scores = np.array([score for _, score, _ in hits], np.float64)
            if dislike_rows:
                scores = rerank.push_away(scores, found_vectors, matrix[dislike_rows])
            genres = [meta.genres for _, _, meta in hits] if max_per_genre is not None else None
            order = rerank.diversify(scores, found_vectors, k, diversity, genres, max_per_genre)
            hits = [(hits[i][0], float(scores[i]), hits[i][2]) for i in order]
            found_vectors = found_vectors[order]
        if strategy == "popular":
            items = [Item(mid, meta, score, None, "popular") for mid, score, meta in hits]
        elif not reasons or found_vectors is None:
            items = [Item(mid, meta, score, None, "people_like_you") for mid, score, meta in hits]
        else:
            nearest = np.argmax(found_vectors @ matrix[reason_rows].T, axis=1)
            items = [
                Item(mid, meta, score, (reasons[j], live.title(reasons[j]) or ""))
                for (mid, score, meta), j in zip(hits, nearest.tolist(), strict=True)
            ]
        used_count = len(used) if strategy == "personalized" else 0
        return Result(strategy, towers.version, live.index_version, used_count, items)

    @staticmethod
    def _popular(
        live: LiveIndex,
        ranked: list[tuple[str, float]],
        k: int,
        accept: Callable[[str, MovieMeta], bool],
    ) -> list[tuple[str, float, MovieMeta]]:
        hits: list[tuple[str, float, MovieMeta]] = []
        for movie_id, score in ranked:
            found = live.get(movie_id)
            if found is not None and accept(movie_id, found[1]):
                hits.append((movie_id, score, found[1]))
                if len(hits) == k:
                    break
        return hits

    def similar(self, movie_id: str, k: int) -> tuple[Serving, list[Item]] | None:
        """Nearest movies to one movie; None when the movie is not in this replica's index."""
        serving = self.serving()
        found = serving.live.get(movie_id)
        if found is None:
            return None
        vector, meta = found
        hits = serving.live.search(vector, k, skip=movie_id.__eq__)
        return serving, [Item(mid, m, score, (movie_id, meta.title)) for mid, score, m in hits]

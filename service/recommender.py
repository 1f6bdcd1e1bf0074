"""The request path, free of HTTP: history -> user tower -> index search -> filter -> explain.

It reads the live index once per call, so a swap in the middle of a request is invisible.
The Lambda-style handler reuses it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.index.columns import NO_YEAR, MetaTable
from service.index.live import LiveIndex, MovieMeta
from service.index.view import IndexView, Serving
from service.store.history import History
from service.towers import Towers


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
    because: tuple[str, str] | None  # (movie id, title) of the nearest history movie


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

    def __init__(self, index: IndexView):
        self.index = index

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
    ) -> Result:
        """`history` newest first; movies no longer in the index are skipped. Every retained
        event counts as seen, not only the ones the tower reads. `popular`: the popular
        movies whatever the history (an experiment's variant). Raises UnknownGenres."""
        serving = self.serving()
        live, towers = serving.live, serving.towers
        self._check(live, filters)
        seen = set(history.movie_ids)
        used: list[int] = []  # positions in `history` of the events the tower reads
        used_ids: list[str] = []
        vectors: list[np.ndarray] = []
        titles: list[str] = []
        taken: set[str] = set()
        length = towers.history_length
        for position, movie_id in enumerate(history.movie_ids):
            if movie_id in taken:
                continue
            taken.add(movie_id)
            found = live.get(movie_id)
            if found is not None:
                used.append(position)
                used_ids.append(movie_id)
                vectors.append(found[0])
                titles.append(found[1].title)
                if len(used) == length:
                    break

        def accept(movie_id: str, meta: MovieMeta) -> bool:
            return not (exclude_seen and movie_id in seen) and filters.admits(meta)

        if not used or popular:
            return self._popular(live, towers, k, accept)
        matrix = np.stack(vectors)
        user = towers.embed_user(matrix, history.weights(np.array(used)))
        hits = live.search(
            user,
            k,
            (lambda _, meta: filters.admits(meta)) if filters.active else None,
            live.base.selection(filters, filters.mask) if filters.active else None,
            seen.__contains__ if exclude_seen else None,
        )
        items: list[Item] = []
        if hits:
            found_vectors = np.stack([live.get(mid)[0] for mid, _, _ in hits])  # type: ignore[index]
            nearest = np.argmax(found_vectors @ matrix.T, axis=1)
            items = [
                Item(mid, meta, score, (used_ids[j], titles[j]))
                for (mid, score, meta), j in zip(hits, nearest.tolist(), strict=True)
            ]
        return Result("personalized", towers.version, live.index_version, len(used), items)

    @staticmethod
    def _popular(live: LiveIndex, towers: Towers, k: int, accept: object) -> Result:
        items: list[Item] = []
        for movie_id, score in towers.popular:
            found = live.get(movie_id)
            if found is not None and accept(movie_id, found[1]):  # type: ignore[operator]
                items.append(Item(movie_id, found[1], score, None))
                if len(items) == k:
                    break
        return Result("popular", towers.version, live.index_version, 0, items)

    def similar(self, movie_id: str, k: int) -> tuple[Serving, list[Item]] | None:
        """Nearest movies to one movie; None when the movie is not in this replica's index."""
        serving = self.serving()
        found = serving.live.get(movie_id)
        if found is None:
            return None
        vector, meta = found
        hits = serving.live.search(vector, k, skip=movie_id.__eq__)
        return serving, [Item(mid, m, score, (movie_id, meta.title)) for mid, score, m in hits]

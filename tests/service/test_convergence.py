"""Randomized convergence: any sequence of catalog writes, trims, refreshes and replica restarts
ends with every replica's indexed ids (and titles) equal to the store's live catalog."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from service.index.live import IndexParams
from service.index.refresher import Refresher
from service.metrics import Metrics
from service.store import Delete, Movie, Store, Upsert, open_store
from service.towers import Towers

IDS = st.sampled_from([f"m{i}" for i in range(8)])
TITLES = st.sampled_from(["Alpha", "Beta", "Gamma"])
REPLICA = st.integers(0, 1)
PARAMS = IndexParams(ann_threshold=4, ivf_nprobe=1, train_points_per_cell=1)  # IVF bases too
_counter = itertools.count()
T = TypeVar("T")


class Convergence(RuleBasedStateMachine):
    towers: Towers
    store_url: str

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.metrics = Metrics()
        self.store: Store = self.run(open_store(self.store_url.format(n=next(_counter))))
        self.run(self.store.clear())
        self.replicas = [self.replica(), self.replica()]

    def replica(self) -> Refresher:
        return Refresher(self.store, self.towers, PARAMS, self.metrics)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    @initialize(ids=st.lists(IDS, min_size=1, max_size=5, unique=True))
    def seed(self, ids: list[str]) -> None:
        self.run(self.store.apply_changes([Upsert(Movie(i, "Seed")) for i in ids]))

    @rule(movie_id=IDS, title=TITLES)
    def upsert(self, movie_id: str, title: str) -> None:
        self.run(self.store.apply_changes([Upsert(Movie(movie_id, title, ("Drama",)))]))

    @rule(movie_id=IDS)
    def delete(self, movie_id: str) -> None:
        self.run(self.store.apply_changes([Delete(movie_id)]))

    @rule(replica=REPLICA, limit=st.integers(1, 4))
    def refresh(self, replica: int, limit: int) -> None:
        self.run(self.replicas[replica].step(limit=limit))

    @rule(replica=REPLICA)
    def restart(self, replica: int) -> None:
        self.replicas[replica] = self.replica()

    @rule(replica=REPLICA)
    def compact(self, replica: int) -> None:
        self.run(self.replicas[replica].compact())

    @rule(keep=st.integers(1, 3))
    def trim(self, keep: int) -> None:
        self.run(self.store.trim_changes(keep))

    def teardown(self) -> None:
        try:
            live = {m.id: m.title for batch in self.run(self._all()) for m in batch}
            for replica in self.replicas:
                self.run(asyncio.wait_for(replica.catch_up(), 60))
                assert replica.caught_up
                index = replica.live
                assert index is not None
                indexed = {mid: index.get(mid)[1].title for mid in index.ids()}  # type: ignore[index]
                assert indexed == live
                assert len(index) == len(live)
        finally:
            self.run(self.store.close())
            self.runner.close()

    async def _all(self) -> list[list[Movie]]:
        return [batch async for batch in self.store.iter_movies()]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_replicas_converge_to_the_store(
    backend: str, tiny_towers: Towers, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    Convergence.towers = tiny_towers
    if backend == "sqlite":
        Convergence.store_url = f"sqlite:///{tmp_path}/convergence-{{n}}.db"
    else:
        Convergence.store_url = str(request.getfixturevalue("redis_url"))
    run_state_machine_as_test(
        Convergence,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

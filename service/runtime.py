"""What the lifespan builds and every route uses, held on `app.state.runtime`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.config import Settings
from service.index import IndexParams
from service.metrics import Metrics
from service.recommender import Recommender
from service.refresher import IndexState
from service.store import Store
from service.towers import Towers


@dataclass(eq=False)
class Runtime:
    settings: Settings
    store: Store
    towers: Towers
    state: IndexState
    metrics: Metrics
    recommender: Recommender
    params: IndexParams

    async def wait_for_version(self, version: int) -> bool:
        """Wait (bounded by settings) until this replica applied `version`; False if it did not."""
        deadline = asyncio.get_running_loop().time() + self.settings.freshness_wait_seconds
        while self.state.version < version:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.state.changed.wait(), remaining)
            except TimeoutError:
                return self.state.version >= version
        return True

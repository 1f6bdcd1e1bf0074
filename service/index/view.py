"""What request code may read of the published index: the live index with the model that
embedded it, and where it stands.

The `Refresher` is the only writer; routes and the recommender see it through this view. A
model swap replaces the index and the towers together, as one `Serving`: a request reads it
once, so it never pairs one model's user vector with another model's movie vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from service.index.live import LiveIndex
from service.towers import Towers


@dataclass(frozen=True, eq=False)
class Serving:
    live: LiveIndex
    towers: Towers  # the model whose movie tower embedded `live`'s vectors


class IndexView(Protocol):
    @property
    def serving(self) -> Serving | None: ...

    @property
    def live(self) -> LiveIndex | None: ...

    @property
    def towers(self) -> Towers:
        """The model served now (the one the live index was embedded with)."""
        ...

    @property
    def model_error(self) -> str | None:
        """Why the version the store names is not served (a failed fetch, load or check)."""
        ...

    @property
    def index_version(self) -> int:
        """The last change-log sequence this replica's live index includes."""
        ...

    @property
    def head(self) -> int:
        """The change log's head when last seen."""
        ...

    @property
    def caught_up(self) -> bool: ...

    @property
    def store_error(self) -> str | None: ...

    @property
    def catalog_lost(self) -> str | None: ...

    async def wait_for(self, seq: int, within: float) -> bool:
        """Wait up to `within` seconds until `index_version >= seq`; whether it got there."""
        ...

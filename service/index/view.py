"""What request code may read of the published index: the live index and where it stands.

The `Refresher` is the only writer; routes and the recommender see it through this view.
"""

from __future__ import annotations

from typing import Protocol

from service.index.live import LiveIndex


class IndexView(Protocol):
    @property
    def live(self) -> LiveIndex | None: ...

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

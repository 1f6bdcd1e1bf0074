"""How many requests are in progress, and how many wait for an index version: one owner for
both counts, shared by the edge (which refuses past the limit) and the routes that wait.

A request waiting for `min_index_version` does nothing but wait, so it gives its in-flight
slot back for the wait and counts as waiting instead, under a limit of its own: clients asking
for versions far ahead cannot take the slots ordinary requests need. One event loop, so plain
counters are exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Admission:
    def __init__(self, max_in_flight: int, max_waiting: int) -> None:
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.waiting = 0

    def enter(self) -> bool:
        """Take an in-flight slot; False (and nothing taken) when all are in use."""
        if self.in_flight >= self.max_in_flight:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1

    @contextlib.contextmanager
    def parked(self) -> Iterator[bool]:
        """Wait outside the in-flight count; yields False when too many already wait (the
        caller answers 503 at once). The slot comes back after the wait even past the limit:
        the request was admitted once and only has its answer left to write."""
        if self.waiting >= self.max_waiting:
            yield False
            return
        self.waiting += 1
        self.in_flight -= 1
        try:
            yield True
        finally:
            self.in_flight += 1
            self.waiting -= 1

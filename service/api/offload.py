"""Work that may take more than a millisecond or two at 1M movies (a filtered search, a title
search over long postings) runs here: in a worker thread, a few at a time, under a deadline,
so the event loop keeps answering everything else (health checks included).

A thread cannot be stopped: past the deadline the client gets its 503 at once and the thread
finishes on its own, still holding its place, so a flood of slow work cannot pile up threads
beyond `concurrency`. Cheap work stays on the loop: a thread hop costs ~0.1 ms.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from service.api.errors import unavailable

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    def __init__(self, concurrency: int, deadline: float) -> None:
        self.deadline = deadline
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` in a thread; 503 + Retry-After past the deadline (the wait
        for a free thread included)."""
        call = functools.partial(work, *args, **kwargs)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.deadline):
                await self._slots.acquire()
                future = loop.run_in_executor(None, call)
                future.add_done_callback(lambda _: self._slots.release())  # when the thread ends
                return await asyncio.shield(future)
        except TimeoutError:
            raise unavailable(
                f"no answer within the {self.deadline:g}s deadline; retry shortly"
            ) from None

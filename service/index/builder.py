"""Where background index builds run: one thread, at a lower CPU priority than requests.

A model swap or a compaction at 1M movies is ~10-20 s of FAISS and NumPy work. Run on the
default thread pool, it took a full core from the event loop whenever the machine had no
spare one (a Fargate task's vCPU, or this project's two shared cores beside Redis and a load
generator): requests queued behind it and the in-flight limit refused them. On Linux a nice
value belongs to a thread, so this one thread yields the core to the serving thread and still
uses any idle one. One worker: two builds at once would only compete with each other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
BUILD_NICE = 10  # CFS weight 110 vs 1024 at 0: about a tenth of a contended core


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: builds still run
        log.warning("index builds run at normal priority: %s", exc)


class BuildThread:
    """The refresher's one low-priority thread for index builds (created on first use)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, "index-build", initializer=_lower_priority)

    async def run(self, work: Callable[[], T]) -> T:
        """`work` on the build thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def close(self) -> None:
        """Drop queued builds; a running one finishes its thread and is discarded."""
        self._executor.shutdown(wait=False, cancel_futures=True)

"""Where a background build's long FAISS calls run: a thread at a lower CPU priority.

A model swap or a compaction at 1M movies is ~15 s of CPU, most of it FAISS training the IVF
cells, adding the vectors and the calibration's exact search. At the process's own priority
it took a core from requests whenever none was spare (a Fargate task's vCPU, or these two
shared cores beside Redis and a load generator): in bench.swap at 1M, requests' p50 went from
1.9 ms to 36 ms for the whole build. Those calls hold no GIL, so they run here, on one thread
at nice 10 (on Linux a nice value belongs to a thread), while the build's Python parts stay on
an ordinary worker thread: a whole build at nice 10 was worse, since a descheduled
low-priority thread holding the GIL stalls the event loop behind it (measured: ADR 26).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

NICE = 10  # CFS weight 110 against 1,024 at nice 0: about a tenth of a contended core


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: it still runs
        log.warning("index builds run at normal priority: %s", exc)


class Background:
    """The refresher's low-priority thread for the long FAISS calls of its builds."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, "index-build", initializer=_lower_priority)

    def run(self, call: Callable[[], Any]) -> Any:
        """`call` on the low-priority thread; blocks the calling (worker) thread until done,
        without holding the GIL meanwhile. A `Heavy` for `BaseIndex.build`."""
        return self._executor.submit(call).result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

"""Recording what was shown, off the request's path: a bounded in-memory queue written to the
store in batches by a background task. A full queue drops the newest and counts it; a batch the
store refuses is dropped and counted (an outage must not grow memory or fail a recommendation).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque

from service.metrics import Metrics
from service.store import Store, StoreError
from service.store.records import Exposure, ExposureLimits

log = logging.getLogger("service.experiments")
BATCH = 500  # exposures per store write


def new_recommendation_id() -> str:
    """32 random hex digits: unguessable, so a client cannot claim another user's list."""
    return uuid.uuid4().hex


class ExposureRecorder:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        limits: ExposureLimits,
        *,
        queue_size: int,
        flush_seconds: float,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self.queue_size = queue_size
        self.flush_seconds = flush_seconds
        self.pending: deque[Exposure] = deque()
        self._dropped = metrics.exposures.labels("dropped")
        self._lock = asyncio.Lock()
        self._failing = False  # log an outage once, and its end

    def record(self, exposure: Exposure) -> None:
        """On the request path: an append, or a count when the queue is full."""
        if len(self.pending) >= self.queue_size:
            self._dropped.inc()
            return
        self.pending.append(exposure)

    async def flush(self) -> int:
        """Write what waits now, up to BATCH a store call; the number recorded. One flush at a
        time, so batches reach the store in the order they were shown; what arrives during a
        flush waits for the next, so a busy replica writes one batch a `flush_seconds`."""
        recorded = 0
        async with self._lock:
            waiting = len(self.pending)  # not what arrives meanwhile: that is the next batch
            while waiting > 0 and self.pending:
                size = min(BATCH, waiting, len(self.pending))
                waiting -= size
                batch = [self.pending.popleft() for _ in range(size)]
                try:
                    await self.store.add_exposures(batch, self.limits)
                except StoreError as exc:
                    self.metrics.exposures.labels("failed").inc(len(batch))
                    if not self._failing:
                        log.warning("exposures not recorded (counted until it recovers): %s", exc)
                    self._failing = True
                    break
                if self._failing:
                    log.info("exposures are recorded again")
                    self._failing = False
                recorded += len(batch)
                self.metrics.exposures.labels("recorded").inc(len(batch))
            self.metrics.exposure_queue.set(len(self.pending))
        return recorded

    async def run(self) -> None:
        """Flush every `flush_seconds` until cancelled; never dies of a failed write."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # a bug must not stop recording for the replica's life
                log.exception("exposure flush failed")

"""The model versions a running experiment's variants name, served beside the promoted one.

Each version this replica does not already serve gets an index of its own, embedded by that
version's movie tower and kept current by a `Refresher` of its own (the same code that keeps the
served index current: full sync, then the change log; no snapshots, no model following, its
metrics on a private registry so they never mix with the served model's). A version stays held
while an experiment names it and is let go when none does. Until its index is caught up, a
variant's users are served the promoted model and their lists recorded outside the experiment,
so a variant's figures only ever count lists of its own model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from service.index.refresher import Refresher
from service.index.view import Serving
from service.metrics import Metrics
from service.store.records import Experiment
from service.towers import ModelLoadError

log = logging.getLogger("service.experiments")
RETRY_CAP_SECONDS = 60.0


def named_models(experiment: Experiment | None) -> set[str]:
    return {v.model for v in experiment.variants if v.model} if experiment else set()


@dataclass(eq=False)
class _Held:
    task: asyncio.Task[None] | None = None
    refresher: Refresher | None = None
    error: str | None = None


@dataclass(eq=False)
class VariantModels:
    """One owner for the extra versions: `hold` starts and stops them, `serving` is the read."""

    served: Refresher  # the replica's own: its store, params and model source are shared
    _held: dict[str, _Held] = field(default_factory=dict)

    def serving(self, version: str) -> Serving | None:
        """`version`'s model and index when this replica can serve it now: the promoted one,
        or a held version whose index has caught up with the change log."""
        main = self.served.serving
        if main is not None and main.towers.version == version:
            return main
        held = self._held.get(version)
        if held is None or held.refresher is None or not held.refresher.caught_up:
            return None
        return held.refresher.serving

    def present(self) -> set[str]:
        """Versions this replica has without the registry: the served one and the image's."""
        source, main = self.served.models, self.served.serving
        own = source.own.version if source is not None and source.own is not None else None
        return {v for v in (own, main.towers.version if main else None) if v is not None}

    def status(self) -> dict[str, str]:
        """Per held version: "ready", "building", or why it cannot be served."""
        return {
            version: held.error or ("ready" if self.serving(version) is not None else "building")
            for version, held in sorted(self._held.items())
        }

    async def hold(self, versions: Iterable[str]) -> None:
        """Hold exactly `versions` (less the promoted one, which needs nothing extra)."""
        wanted = set(versions)
        main = self.served.serving
        if main is not None:
            wanted.discard(main.towers.version)
        for version in set(self._held) - wanted:
            await self._let_go(version)
        for version in wanted - set(self._held):
            held = _Held()
            held.task = asyncio.create_task(self._follow(version, held), name=f"variant-{version}")
            self._held[version] = held
            log.info("experiment names model %s: building its index beside the served one", version)

    async def close(self) -> None:
        for version in list(self._held):
            await self._let_go(version)

    async def _let_go(self, version: str) -> None:
        task = self._held.pop(version).task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("no experiment names model %s any more: its index is let go", version)

    async def _follow(self, version: str, held: _Held) -> None:
        """Load the version (retried with backoff while it cannot be had), then tail the log."""
        source = self.served.models
        backoff = 1.0
        while held.refresher is None:
            try:
                if source is None:
                    raise ModelLoadError("this replica has no model registry")
                towers = await asyncio.to_thread(source.load, version)
            except ModelLoadError as exc:
                held.error = str(exc)
                log.error("experiment model %s: %s; retrying in %.0fs", version, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, RETRY_CAP_SECONDS)
                continue
            held.error = None
            served = self.served
            held.refresher = Refresher(
                served.store,
                towers,
                served.params,
                Metrics(),
                compact_at=served.compact_at,
                min_fraction=served.min_fraction,
            )
        await held.refresher.run()

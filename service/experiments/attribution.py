"""Which list led to an event: the one its `recommendation_id` names (explicit, as Amazon
Personalize takes it), else the latest list that showed the event's movie to the same user
within the attribution window before the event (implicit). Each (list, movie) counts once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from service.metrics import Metrics
from service.store import Event, Store
from service.store.records import Exposure


@dataclass(frozen=True, slots=True)
class Attributed:
    exposure: Exposure
    movie_id: str
    position: int
    how: Literal["explicit", "implicit"]


def find(
    shown: Sequence[Exposure], event: Event, recommendation_id: str | None, window: float
) -> tuple[Exposure, Literal["explicit", "implicit"]] | None:
    """`shown` newest first. An explicit id must name one of the user's lists that showed the
    movie; without one, the newest list shown at or before the event, at most `window` s
    before, that showed the movie."""
    movie = event.movie_id
    if recommendation_id is not None:
        for exposure in shown:
            if exposure.id == recommendation_id:
                return (exposure, "explicit") if exposure.position(movie) else None
        return None
    for exposure in shown:
        if exposure.at <= event.timestamp <= exposure.at + window and exposure.position(movie):
            return exposure, "implicit"
    return None


async def attribute(
    store: Store,
    metrics: Metrics,
    subject: str,
    events: Sequence[tuple[Event, str | None]],
    window: float,
) -> list[Attributed]:
    """Attribute the user's new events (each with its recommendation_id or None): one read of
    the user's lists, one claim per event that matches."""
    shown = await store.subject_exposures(subject)
    if not shown:
        return []
    done: list[Attributed] = []
    for event, recommendation_id in events:
        found = find(shown, event, recommendation_id, window)
        if found is None:
            continue
        exposure, how = found
        if await store.claim_attribution(exposure, event.movie_id, window):
            position = exposure.position(event.movie_id) or 0
            done.append(Attributed(exposure, event.movie_id, position, how))
            metrics.attributed.labels(exposure.experiment or "", exposure.variant or "", how).inc()
    return done

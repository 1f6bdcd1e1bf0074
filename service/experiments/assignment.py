"""Which variant a user (or session) gets: a hash of (experiment, id), no per-user state.

Every replica computes the same answer from the experiment's definition alone, and a user keeps
their variant for the experiment's whole life. A new experiment's name reshuffles everyone.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from service.store.records import Experiment, Variant

_SPAN = float(1 << 64)


def bucket(experiment: str, subject: str) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of SHA-256(experiment NUL subject)."""
    digest = hashlib.sha256(f"{experiment}\0{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


def assign(experiment: Experiment, subject: str) -> Variant:
    """The variant whose share of the weights holds the subject's bucket."""
    point = bucket(experiment.name, subject) * sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return experiment.variants[-1]  # float rounding at the very top


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: Variant


class Experiments:
    """This replica's copy of the store's experiments (refreshed by `refresh`, and at once by
    a route that changed them): who gets which variant, with no store call on the request."""

    def __init__(self) -> None:
        self.known: list[Experiment] = []

    def replace(self, experiments: list[Experiment]) -> None:
        self.known = experiments

    def running(self, now: float | None = None) -> Experiment | None:
        now = time.time() if now is None else now
        return next((e for e in self.known if e.active(now)), None)

    def assign(self, subject: str | None) -> Assignment | None:
        """None outside an experiment: no experiment runs, or nobody to assign (a list shown
        without a user or session id)."""
        if subject is None or not self.known:
            return None
        experiment = self.running()
        if experiment is None:
            return None
        return Assignment(experiment.name, assign(experiment, subject))

"""What a store raises: a person-readable failure, a retryable outage (503), a refused record."""

from __future__ import annotations


class StoreError(Exception):
    """An expected failure with a message meant for a person (bad URL, unreachable server)."""


class StoreUnavailable(StoreError):
    """The store refused, reset, timed out or ran out of connections: retry later (a 503)."""


class InvalidRecord(StoreError, ValueError):
    """A record that must not be written; nothing of the batch it came in was written."""


class PromotionRaced(StoreError):
    """The serving pointer no longer names what the promotion was decided against."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(
            f"the serving model is {current or 'none'}, not {expected or 'none'}: it moved "
            "since this promotion was decided; nothing was changed"
        )
        self.current = current


class ExperimentConflict(StoreError):
    """An experiment by that name exists, or another one is running (a 409)."""


class UnknownExperiment(StoreError, LookupError):
    """No experiment by that name (a 404)."""

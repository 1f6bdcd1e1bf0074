"""Every Redis key and stream name the project uses, in one place (as arq does).

All keys share one prefix so a deployment can share a Redis database with other apps.
"""

from __future__ import annotations

PREFIX = "movie-recs:"

MOVIES = f"{PREFIX}movies"  # hash: movie id -> "<version>|<deleted 0/1>|<content json>"
LIVE_COUNT = f"{PREFIX}movies:live"  # int: movies not deleted
SEQUENCE = f"{PREFIX}changes:seq"  # int: last change-log sequence handed out
CHANGES = f"{PREFIX}changes"  # stream: entry id "<seq>-0", fields id/op/v/at
EPOCH = f"{PREFIX}epoch"  # string: random, created with the first write or read
USERS = f"{PREFIX}users"  # set: user ids that have activity
FORMAT = f"{PREFIX}format"  # int: the history format the data is in (service/store/history.py)


def history(user_id: str) -> str:
    """String: a user's packed history record (service/store/history.py)."""
    return f"{PREFIX}history:{user_id}"


def activity(user_id: str) -> str:
    """History format 1 (before FORMAT): a sorted set of "movie|kind|rating|ts" scored by
    timestamp. Read only by the one-time upgrade, which converts and deletes it."""
    return f"{PREFIX}activity:{user_id}"


ACTIVITY_PATTERN = activity("*")


def dedupe(key: str) -> str:
    """Idempotency claim (webhook id): "<first>-<last>|<body digest>", the sequence range it
    produced and what was delivered under it (a reused id with another body is a conflict)."""
    return f"{PREFIX}dedupe:{key}"


def embeddings(model_version: str) -> str:
    """Hash: movie id -> 8-byte movie version + float32 vector, for one model version."""
    return f"{PREFIX}embeddings:{model_version}"

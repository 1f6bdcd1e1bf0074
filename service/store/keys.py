"""Every Redis key and stream name the project uses, in one place (as arq does).

All keys share one prefix so a deployment can share a Redis database with other apps.

A user's keys carry the user id as a hash tag (`{...}`), so on a Redis Cluster they all live in
one hash slot and a script may touch them together. The id is escaped inside the tag (ids may
hold `{` and `}`): the tag is always the whole id, so no id can pick another's slot.
"""

from __future__ import annotations

import re

PREFIX = "movie-recs:"

# --- the catalog: on the store_url's Redis --------------------------------------------------
MOVIES = f"{PREFIX}movies"  # hash: movie id -> "<version>|<deleted 0/1>|<content json>"
LIVE_COUNT = f"{PREFIX}movies:live"  # int: movies not deleted
SEQUENCE = f"{PREFIX}changes:seq"  # int: last change-log sequence handed out
CHANGES = f"{PREFIX}changes"  # stream: entry id "<seq>-0", fields id/op/v/at
EPOCH = f"{PREFIX}epoch"  # string: random, created with the first write or read
FORMAT = f"{PREFIX}format"  # int: the history format the data is in (service/store/history.py)
SERVING_MODEL = f"{PREFIX}model:serving"  # string: the model version replicas serve
MODEL_HISTORY = f"{PREFIX}model:history"  # list: each promotion as JSON, newest first
EXPOSURES = f"{PREFIX}exposures"  # stream: every exposure as JSON (field "r"), trimmed by age+len
EXPERIMENTS = f"{PREFIX}experiments"  # hash: experiment name -> its definition as JSON


def dedupe(key: str) -> str:
    """Idempotency claim (webhook id): "<first>-<last>|<body digest>", the sequence range it
    produced and what was delivered under it (a reused id with another body is a conflict)."""
    return f"{PREFIX}dedupe:{key}"


def experiment_exposures(name: str) -> str:
    """Hash: "<variant>|<subject>" -> exposures shown to that subject in that variant; it
    expires at the experiment's expires_at."""
    return f"{PREFIX}experiment:{name}:exposures"


def experiment_attributed(name: str) -> str:
    """Hash: "<variant>|<subject>" -> events attributed to those exposures (same lifetime)."""
    return f"{PREFIX}experiment:{name}:attributed"


def embeddings(model_version: str) -> str:
    """Hash: movie id -> 8-byte movie version + float32 vector, for one model version."""
    return f"{PREFIX}embeddings:{model_version}"


# --- activity: on the activity_url's Redis (or cluster) when set, else the catalog's ---------
_USER = f"{PREFIX}user:"
_HISTORY = ":history"
_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D"}
_ESCAPED = re.compile("|".join(re.escape(code) for code in _ESCAPES.values()))
_UNESCAPES = {code: char for char, code in _ESCAPES.items()}


def _tagged(user_id: str) -> str:
    tag = "".join(_ESCAPES.get(char, char) for char in user_id)
    return f"{_USER}{{{tag}}}"


def history(user_id: str) -> str:
    """String with a TTL: a user's packed history record (service/store/history.py)."""
    return f"{_tagged(user_id)}{_HISTORY}"


def exposures(subject: str) -> str:
    """List with a TTL: a user's (or session's) newest exposures as JSON, newest first."""
    return f"{_tagged(subject)}:exposures"


def attributed(subject: str) -> str:
    """Hash with a TTL: "<recommendation id>|<movie id>" -> 1, each event attributed once."""
    return f"{_tagged(subject)}:attributed"


USER_PATTERN = f"{_USER}{{*}}:*"  # SCAN MATCH: every key of every user


HISTORY_PATTERN = f"{_USER}{{*}}{_HISTORY}"  # SCAN MATCH: every history key


def user_of_history(key: str | bytes) -> str:
    """The user id a `history` key belongs to."""
    text = key.decode() if isinstance(key, bytes) else key
    tag = text.removeprefix(f"{_USER}{{").removesuffix(f"}}{_HISTORY}")
    return _ESCAPED.sub(lambda code: _UNESCAPES[code.group()], tag)


# --- older formats: read only by the one-time upgrade, which converts and deletes them --------
USERS = f"{PREFIX}users"  # format 2: a set of the user ids that had activity (no TTL, grew)


def history_v2(user_id: str) -> str:
    """Format 2: the same packed record, without a hash tag or a TTL."""
    return f"{PREFIX}history:{user_id}"


def activity(user_id: str) -> str:
    """Format 1: a sorted set of "movie|kind|rating|ts" scored by timestamp."""
    return f"{PREFIX}activity:{user_id}"

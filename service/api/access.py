"""Who may call /v1: API keys with a name and scopes, each with its own rate limit.

Keys are server-to-server secrets (a client's backend holds one and acts for all its users);
they are never meant for a browser. One configuration string (`MOVIE_RECS_API_KEYS`, a secret
on AWS) holds them all, comma-separated, each `name:scope+scope:secret`. A bare secret, the
format before scopes existed, keeps full access so an upgrade does not lock anyone out; startup
logs each such key.

The rate limit is a token bucket per key **per replica**, in memory: no store round trip on
the hot path, and it keeps working while Redis is down (the service fails static). The fleet's
limit for a key is therefore `replicas x MOVIE_RECS_KEY_RATE_PER_SECOND`; SECURITY.md says so.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from service.config import Settings
from service.ingest.webhook import load_secrets

READ = "read"  # catalog, movies, search, recommendations
EVENTS = "events"  # write a user's events
USERS = "users"  # read a user's history, list users, erase a user
ADMIN = "admin"  # everything, including what only operators do
SCOPES = (READ, EVENTS, USERS, ADMIN)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MIN_SECRET_LENGTH = 16


class AccessConfigError(ValueError):
    """A key or secret that cannot be served with: startup stops with this one line."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[str]
    legacy: bool = False  # a bare secret: full access

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def parse_keys(values: Sequence[SecretStr]) -> dict[bytes, ApiKey]:
    """The configured keys by the SHA-256 of their secret (a lookup that leaks nothing of the
    secret through timing: the digest, not the secret, is compared)."""
    keys: dict[bytes, ApiKey] = {}
    names: set[str] = set()
    for position, value in enumerate(values, start=1):
        text = value.get_secret_value()
        if ":" in text:
            name, scope_text, secret = [*text.split(":", 2), "", ""][:3]
            if not NAME_PATTERN.fullmatch(name):
                raise AccessConfigError(
                    f"MOVIE_RECS_API_KEYS: key #{position} has no valid name (want "
                    "'name:scope+scope:secret', name 1-32 of A-Z a-z 0-9 _ . -)"
                )
            scopes = frozenset(s for s in scope_text.split("+") if s)
            unknown = sorted(scopes - set(SCOPES))
            if not scopes or unknown:
                raise AccessConfigError(
                    f"MOVIE_RECS_API_KEYS: key {name!r} has "
                    + (f"unknown scope(s) {', '.join(unknown)}" if unknown else "no scope")
                    + f" (scopes: {', '.join(SCOPES)})"
                )
            key = ApiKey(name, scopes)
        else:
            secret, key = text, ApiKey(f"key{position}", frozenset(SCOPES), legacy=True)
        if len(secret) < MIN_SECRET_LENGTH:
            raise AccessConfigError(
                f"MOVIE_RECS_API_KEYS: the secret of key {key.name!r} is shorter than "
                f"{MIN_SECRET_LENGTH} characters"
            )
        if key.name in names:
            raise AccessConfigError(f"MOVIE_RECS_API_KEYS: two keys are named {key.name!r}")
        names.add(key.name)
        digest = _digest(secret.encode())
        if digest in keys:
            raise AccessConfigError(
                f"MOVIE_RECS_API_KEYS: keys {keys[digest].name!r} and {key.name!r} share a secret"
            )
        keys[digest] = key
    return keys


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = math.inf
    updated: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> float:
        """0 when a request may go now (and takes a token), else the seconds until one may."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class KeyRing:
    """The keys one replica accepts, and each key's bucket."""

    def __init__(self, values: Sequence[SecretStr], rate: float, burst: int) -> None:
        self.keys = parse_keys(values)
        self.buckets = {key.name: TokenBucket(rate, burst) for key in self.keys.values()}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, secret: str) -> ApiKey | None:
        return self.keys.get(_digest(secret.encode()))

    def wait(self, key: ApiKey) -> float:
        """0 when `key` may make a request now, else the seconds until it may."""
        return self.buckets[key.name].take(time.monotonic())


@dataclass(frozen=True, eq=False)
class Access:
    """What `serve` authenticates with, checked before it starts: fail closed."""

    keys: KeyRing
    webhooks: list[Webhook]

    @property
    def open(self) -> bool:
        """No key configured and auth explicitly off (the local demo)."""
        return not self.keys


def load_access(settings: Settings) -> Access:
    """The keys and webhook secrets, or AccessConfigError / BadWebhookSecret with one line
    saying what to fix: without keys the API would be open to anyone, so that needs
    MOVIE_RECS_AUTH_DISABLED=true, said on purpose."""
    keys = KeyRing(settings.api_keys, settings.key_rate_per_second, settings.key_burst)
    if not keys and not settings.auth_disabled:
        raise AccessConfigError(
            "no API key configured: set MOVIE_RECS_API_KEYS ('name:scope+scope:secret', see "
            "SECURITY.md), or MOVIE_RECS_AUTH_DISABLED=true to serve /v1 to anyone (a local demo)"
        )
    webhooks = load_secrets([s.get_secret_value() for s in settings.webhook_secrets])
    return Access(keys, webhooks)

"""Byte layouts both backends share: dedupe claims, cached vectors, format-1 history keys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.store.errors import InvalidRecord
from service.store.records import Event


def pack_dedupe(first: int | None, last: int | None, digest: str) -> str:
    """What a dedupe claim stores: the sequence range it produced and the body's digest."""
    span = f"{first}-{last}" if first is not None else "-"
    return f"{span}|{digest}" if digest else span


def unpack_dedupe(raw: str | bytes) -> tuple[int | None, int | None, str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    span, _, digest = text.partition("|")
    first, _, last = span.partition("-")
    return (int(first), int(last), digest) if first else (None, None, digest)


def events_from_keys(rows: Sequence[str] | Sequence[bytes]) -> list[Event]:
    """Decode format-1 history members (`movie|kind|rating|timestamp`, what stores held before
    the packed record of `service/store/history.py`): the one-time upgrade reads them."""
    if not rows:
        return []
    text = b"|".join(rows).decode() if isinstance(rows[0], bytes) else "|".join(rows)  # type: ignore[arg-type]
    parts = text.split("|")
    if len(parts) != 4 * len(rows):
        raise InvalidRecord("a stored event key does not have four '|'-separated fields")
    return [
        Event(movie_id, kind, float(timestamp), float(rating) if rating else None)  # type: ignore[arg-type]
        for movie_id, kind, rating, timestamp in zip(
            parts[0::4], parts[1::4], parts[2::4], parts[3::4], strict=True
        )
    ]


def pack_vector(version: int, vector: np.ndarray) -> bytes:
    return (
        int(version).to_bytes(8, "little", signed=False)
        + np.asarray(vector, dtype=np.float32).tobytes()
    )


def unpack_vector(raw: bytes) -> tuple[int, np.ndarray]:
    return int.from_bytes(raw[:8], "little"), np.frombuffer(raw[8:], dtype=np.float32).copy()

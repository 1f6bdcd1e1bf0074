"""Redis key names: each user's keys in one hash slot, chosen by the whole id."""

from __future__ import annotations

from redis.crc import key_slot

from service.store import keys


def test_an_id_cannot_pick_the_hash_slot_of_another() -> None:
    """Unescaped, `x}1`, `x}2`, ... would all hash as `x`: one cluster node for all of them."""
    users = [f"x}}{i}" for i in range(50)]
    slots = {key_slot(keys.history(user).encode()) for user in users}
    assert len(slots) > 40
    assert key_slot(keys.history("x}1").encode()) != key_slot(b"x")


def test_the_user_comes_back_from_any_history_key() -> None:
    for user in ["1", "{x}", "x}1", "%7B", "a%b", "é", "*", "a:history}", "}{"]:
        assert keys.user_of_history(keys.history(user).encode()) == user

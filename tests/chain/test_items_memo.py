"""The storage items' memo tables never change what a key or a read gives."""

from __future__ import annotations

import pytest

from chain.pallets.balances import ACCOUNT, AccountInfo
from chain.pallets.items import blake2_128, compute_map_key_part


class _DictState(dict[bytes, bytes]):
    def set(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


def test_memoized_keys_are_the_computed_keys() -> None:
    who = bytes(range(32))
    expected = ACCOUNT.prefix + blake2_128(who) + who
    assert ACCOUNT.compute_key(who) == ACCOUNT.compute_key(who) == expected
    assert ACCOUNT.compute_key(7, who) == ACCOUNT.prefix + compute_map_key_part(7) + compute_map_key_part(who)
    with pytest.raises(TypeError):
        ACCOUNT.compute_key(True)


def test_reads_follow_writes_and_shared_values_are_frozen() -> None:
    state = _DictState()
    who = bytes(32)
    assert ACCOUNT.get(state, who) is None
    ACCOUNT.apply_set(state, AccountInfo(1, 2, 3), who)
    first = ACCOUNT.get(state, who)
    assert first == AccountInfo(1, 2, 3) and ACCOUNT.get(state, who) == first
    ACCOUNT.apply_set(state, AccountInfo(4, 5, 6), who)
    assert ACCOUNT.get(state, who) == AccountInfo(4, 5, 6)
    with pytest.raises(AttributeError):
        first.free = 0  # type: ignore[misc]


def test_batched_reads_give_what_one_by_one_reads_give() -> None:
    # StorageMap.get_many / compute_keys / decode_many (a run of transfers reads its accounts
    # so), for a frozen value type (decoded values memoized) and a mutable one (never shared).
    class _BatchState(_DictState):
        def get_many(self, keys: list[bytes]) -> list[bytes | None]:
            return [self.get(key) for key in keys]

        peek_many = get_many

    from chain.pallets.items import StorageMap

    mutable = StorageMap("Test", "Lists", list[int])
    state = _BatchState()
    whos = [bytes([i]) * 32 for i in range(4)]
    for i, who in enumerate(whos[:3]):
        ACCOUNT.apply_set(state, AccountInfo(i, 10 * i, 0), who)
        mutable.apply_set(state, [i, i], who)
    asked = [whos[3], whos[0], whos[2], whos[0]]
    assert ACCOUNT.compute_keys(asked) == [ACCOUNT.compute_key(who) for who in asked]
    for item in (ACCOUNT, mutable):
        expected = [item.get(state, who) for who in asked]
        assert item.get_many(state, asked) == expected == item.get_many(state, asked, peek=True)
        assert expected[0] is None and expected[1] is not None
    lists = mutable.get_many(state, asked)
    assert lists[1] == lists[3] and lists[1] is not lists[3]  # a mutable value is decoded afresh each time

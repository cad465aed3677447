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

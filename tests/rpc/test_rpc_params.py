"""The parameter kinds of rpc.params, alone and through bind_params."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import dev_keypair
from rpc import params as p
from rpc.errors import InvalidParams
from rpc.methods import bind_params

BOB = dev_keypair("Bob")
KINDS = [p.U32, p.KEYS_COUNT, p.HASH, p.EXTRINSIC, p.STORAGE_KEY, p.STORAGE_KEYS, p.ACCOUNT, p.BLOCK_NUMBERS, p.PREDICT_ROWS]


def reason(kind: p.Param, value: Any) -> str:
    with pytest.raises(InvalidParams) as info:
        kind.parse(value)
    return info.value.message


def test_hex_is_strict() -> None:
    assert p.STORAGE_KEY.parse("0x") == b"" and p.STORAGE_KEY.parse("0xAbCd") == b"\xab\xcd"
    for bad in ("0x 12", "0x1", "12", "0xzz", "0x\u0661\u0662", 12, None, ["0x"]):
        assert "0x-prefixed hex" in reason(p.STORAGE_KEY, bad), bad
    assert reason(p.STORAGE_KEY, "0x" + "00" * 257) == "must be at most 256 bytes, got 257"
    assert p.STORAGE_KEY.parse("0x" + "00" * 256) == bytes(256)
    assert reason(p.HASH, "0x1234") == "must be 32 bytes, got 2"
    assert p.HASH.or_null().parse(None) is None
    assert reason(p.HASH, None).endswith("got null")


def test_integers_are_json_integers_in_range() -> None:
    assert p.U32.parse(0) == 0 and p.U32.parse(2**32 - 1) == 2**32 - 1
    for bad in (2**32, -1, True, 1.0, "1", 10**400):
        assert reason(p.U32, bad).startswith("must be an integer in 0..4294967295, got"), bad
    assert len(reason(p.U32, 10**400)) < 120  # a huge number is not echoed in full
    assert reason(p.KEYS_COUNT, 0) == "must be an integer in 1..1000, got integer 0"


def test_lists_are_bounded_and_name_the_bad_item() -> None:
    assert p.STORAGE_KEYS.parse(["0x01", "0x"]) == [b"\x01", b""]
    assert reason(p.STORAGE_KEYS, ["0x"] * 1001) == "must hold at most 1000 items, got 1001"
    assert reason(p.STORAGE_KEYS, ["0x", "0x" + "00" * 257]) == "item 1 must be at most 256 bytes, got 257"
    assert p.BLOCK_NUMBERS.parse("0x1a") == 26 and p.BLOCK_NUMBERS.parse("26") == 26
    assert p.BLOCK_NUMBERS.parse([0, "0x1"]) == [0, 1]
    for bad in (-1, 2**32, "0x", " 5", "1_0", "0x1_0", True, 1.5):
        assert "must be a block number: an integer in 0..4294967295" in reason(p.BLOCK_NUMBERS, bad), bad
    assert reason(p.BLOCK_NUMBERS, [0] * 1025) == "must hold at most 1024 items, got 1025"


def test_accounts_are_ss58_or_hex_never_uris() -> None:
    assert p.ACCOUNT.parse(BOB.address) == BOB.public == p.ACCOUNT.parse("0x" + BOB.public.hex())
    assert "an SS58 address or a 0x-hex 32-byte account id" in reason(p.ACCOUNT, "//Alice")
    assert "checksum" in reason(p.ACCOUNT, BOB.address[:-1] + ("x" if BOB.address[-1] != "x" else "y"))
    assert "32 bytes" in reason(p.ACCOUNT, "0x1234")


def test_rows_are_float32_numbers() -> None:
    rows = p.PREDICT_ROWS.parse([[1, 2.5], [0, -1]])
    assert rows.dtype == np.float32 and rows.tolist() == [[1.0, 2.5], [0.0, -1.0]]
    assert "inputs[0][1] is string '1'" in reason(p.PREDICT_ROWS, [[0, "1"]])
    assert "inputs[0][0] is boolean" in reason(p.PREDICT_ROWS, [[True]])
    assert "inputs[0][0] is integer" in reason(p.PREDICT_ROWS, [[10**400]])
    assert "inputs[1][0] is outside float32's finite range" in reason(p.PREDICT_ROWS, [[0.0], [1e39]])
    assert "row 1 is not an array of 2 numbers" in reason(p.PREDICT_ROWS, [[0, 0], [0]])
    assert "1..1024 arrays" in reason(p.PREDICT_ROWS, [])
    assert "at most 262144 numbers" in reason(p.PREDICT_ROWS, [[0.0] * 4096] * 65)


async def test_bind_params_runs_the_kind_and_names_the_param() -> None:
    @bind_params
    async def f(model: p.Id, version: p.OptionalId = None, at: p.At = None) -> Any:
        return model, version, at

    assert await f([1]) == (1, None, None)
    assert await f({"model": 1, "at": "0x" + "ab" * 32}) == (1, None, b"\xab" * 32)
    assert await f([1, None]) == (1, None, None)
    with pytest.raises(InvalidParams) as info:
        await f([1, 2**32])
    assert info.value.code == -32602
    assert info.value.message == "Invalid params: param 1 'version' must be an integer in 0..4294967295, got integer 4294967296"
    with pytest.raises(InvalidParams) as info:
        await f({"model": 0, "at": "0x12"})
    assert info.value.message == "Invalid params: param 2 'at' must be 32 bytes, got 1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["0x", "0x" + "00" * 32, "0x" + "00" * 257, BOB.address, "0x1", "1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), value=json_values)
def test_every_kind_parses_or_refuses_with_invalid_params(kind: p.Param, value: Any) -> None:
    try:
        kind.parse(value)
    except InvalidParams as exc:
        assert exc.message.startswith(("must", "item")), exc.message

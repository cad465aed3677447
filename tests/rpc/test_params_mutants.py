"""Mutation testing of rpc/params.py: every JSON-RPC parameter is parsed and bounded there.

Run by name (``mutmut run "rpc.params*"``; the module is in ``[tool.mutmut] only_mutate``).
tests/rpc/test_rpc_params.py has each kind's rules; this file pins each refusal's exact
message and each bound at both of its edges, so that a message losing what was given, or a
bound moved by one, is seen.

Before these tests 37 of the 201 mutants lived and 7 had no test (``check_no_params``):
bounds at their exact edges (1,000 keys, 1,024 numbers, 1,024 rows, 2^18 numbers, 2^32 - 1,
64-character addresses, +-2^128), the 40-character cut of what was given, the hex kinds'
descriptions. Now 199/201.

Equivalent survivors:
- ``_shown``: ``repr(value)`` for every scalar instead of strings only. The scalars that reach
  it are ints, floats and strings (booleans and null are shown by type before), and for an int
  or a float ``repr`` and ``str`` are the same text.
- ``BlockNumbers._number``: ``int(value)`` for ``int(value, 10)``. The text reaching it matched
  ``[0-9]{1,80}``, and ``int`` of a str is base 10 unless told otherwise.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from chain.crypto import dev_keypair
from rpc import params as p
from rpc.errors import InvalidParams

BOB = dev_keypair("Bob")
HEX_RULE = "(an even number of digits 0-9, a-f)"
ACCOUNT_RULE = "must be an SS58 address or a 0x-hex 32-byte account id"
NUMBER_RULE = "must be a block number: an integer in 0..4294967295 (or its 0x-hex or decimal text)"
ROWS_RULE = "must be rows of numbers: 1..1024 arrays of one length in 1..4096"


def reason(kind: p.Param, value: Any) -> str:
    with pytest.raises(InvalidParams) as info:
        kind.parse(value)
    return info.value.message


def test_what_was_given_is_shown_by_its_json_type_and_at_most_40_characters() -> None:
    """A scalar is shown as its JSON type and value (a string quoted); past 40 characters the
    text is cut to 37 and ``...``; a boolean, null, array or object by its type alone."""
    rule = "must be an integer in 0..4294967295, got"
    assert reason(p.U32, True) == f"{rule} boolean"
    assert reason(p.U32, False) == f"{rule} boolean"
    assert reason(p.U32, None) == f"{rule} null"
    assert reason(p.U32, -1) == f"{rule} integer -1"
    assert reason(p.U32, 1.5) == f"{rule} number 1.5"
    assert reason(p.U32, "1") == f"{rule} string '1'"
    assert reason(p.U32, [1]) == f"{rule} array"
    assert reason(p.U32, {"a": 1}) == f"{rule} object"
    assert reason(p.U32, "x" * 38) == f"{rule} string '{'x' * 38}'"  # 40 characters with quotes
    assert reason(p.U32, "x" * 39) == f"{rule} string '{'x' * 36}..."  # 41 cut to 37 and ...
    assert reason(p.U32, 10**39) == f"{rule} integer {10**39}"  # 40 digits
    assert reason(p.U32, 10**40) == f"{rule} integer {str(10**40)[:37]}..."


def test_hex_kinds_describe_themselves_exactly() -> None:
    assert reason(p.HASH, 12) == f"must be 0x-prefixed hex of 32 bytes {HEX_RULE}, got integer 12"
    assert reason(p.STORAGE_KEY, "0xz") == f"must be 0x-prefixed hex of at most 256 bytes {HEX_RULE}, got string '0xz'"
    assert reason(p.EXTRINSIC, "12") == f"must be 0x-prefixed hex {HEX_RULE}, got string '12'"
    assert reason(p.EXTRINSIC, "0X12") == f"must be 0x-prefixed hex {HEX_RULE}, got string '0X12'"
    assert reason(p.EXTRINSIC, "0x123") == f"must be 0x-prefixed hex {HEX_RULE}, got string '0x123'"
    assert reason(p.EXTRINSIC, "0x12 ") == f"must be 0x-prefixed hex {HEX_RULE}, got string '0x12 '"
    assert reason(p.EXTRINSIC, "x012") == f"must be 0x-prefixed hex {HEX_RULE}, got string 'x012'"
    assert reason(p.EXTRINSIC, None) == "must be 0x-prefixed hex, got null"


def test_hex_lengths_are_counted_in_bytes_at_both_edges() -> None:
    assert p.EXTRINSIC.parse("0x") == b"" and p.EXTRINSIC.parse("0x" + "ab" * 300) == b"\xab" * 300
    assert p.EXTRINSIC.parse("0x0a1B") == b"\x0a\x1b"
    assert p.HASH.parse("0x" + "01" * 32) == b"\x01" * 32
    assert reason(p.HASH, "0x" + "01" * 31) == "must be 32 bytes, got 31"
    assert reason(p.HASH, "0x" + "01" * 33) == "must be 32 bytes, got 33"
    assert reason(p.HASH, "0x") == "must be 32 bytes, got 0"
    assert p.STORAGE_KEY.parse("0x" + "02" * 256) == b"\x02" * 256
    assert reason(p.STORAGE_KEY, "0x" + "02" * 257) == "must be at most 256 bytes, got 257"
    assert p.STORAGE_KEY.or_null().parse(None) is None and p.STORAGE_KEY.or_null().nullable
    assert not p.STORAGE_KEY.nullable and p.STORAGE_KEY.or_null().parse("0x02") == b"\x02"


def test_integer_ranges_are_inclusive_at_both_ends() -> None:
    assert p.KEYS_COUNT.parse(1) == 1 and p.KEYS_COUNT.parse(1000) == 1000
    assert reason(p.KEYS_COUNT, 0) == "must be an integer in 1..1000, got integer 0"
    assert reason(p.KEYS_COUNT, 1001) == "must be an integer in 1..1000, got integer 1001"
    assert p.U32.parse(0) == 0 and p.U32.parse(2**32 - 1) == 2**32 - 1
    assert p.U32.or_null().parse(None) is None and p.U32.or_null().parse(7) == 7


def test_a_hex_list_is_bounded_and_names_the_bad_item() -> None:
    assert p.STORAGE_KEYS.parse(["0x"] * 1000) == [b""] * 1000
    assert reason(p.STORAGE_KEYS, "0x") == (
        "must be an array of at most 1000 values of 0x-prefixed hex of at most 256 bytes, got string '0x'"
    )
    assert reason(p.STORAGE_KEYS, ["0x01", None]) == (
        "item 1 must be 0x-prefixed hex of at most 256 bytes, got null"
    )
    assert reason(p.STORAGE_KEYS, ["0x01", "0x1"]) == (
        f"item 1 must be 0x-prefixed hex of at most 256 bytes {HEX_RULE}, got string '0x1'"
    )


def test_accounts_refuse_with_exact_reasons() -> None:
    assert p.ACCOUNT.parse(BOB.address) == BOB.public
    assert p.ACCOUNT.parse("0x" + BOB.public.hex().upper()) == BOB.public
    assert reason(p.ACCOUNT, 12) == f"{ACCOUNT_RULE}, got integer 12"
    assert reason(p.ACCOUNT, None) == f"{ACCOUNT_RULE}, got null"
    assert reason(p.ACCOUNT, "//Alice") == f"{ACCOUNT_RULE}, got string '//Alice'"
    assert reason(p.ACCOUNT, "\u0661\u0662") == f"{ACCOUNT_RULE}, got string '\u0661\u0662'"  # digits, not ASCII
    assert reason(p.ACCOUNT, "0x1234") == f"{ACCOUNT_RULE}: must be 32 bytes, got 2"
    assert reason(p.ACCOUNT, "0xzz") == f"{ACCOUNT_RULE}: must be 0x-prefixed hex of 32 bytes {HEX_RULE}, got string '0xzz'"
    # At most 64 characters reach the SS58 decoder; 65 are refused before it.
    assert reason(p.ACCOUNT, "1" * 64) == (
        f"{ACCOUNT_RULE}: '{'1' * 64}' is not a 32-byte SS58 address (decoded 64 bytes)"
    )
    assert reason(p.ACCOUNT, "1" * 65) == f"{ACCOUNT_RULE}, got string '{'1' * 36}..."
    assert reason(p.ACCOUNT, "abc") == f"{ACCOUNT_RULE}: 'abc' is not a 32-byte SS58 address (decoded 3 bytes)"


def test_block_numbers_are_read_in_their_base_and_bounded_at_both_ends() -> None:
    assert p.BLOCK_NUMBERS.parse(0) == 0 and p.BLOCK_NUMBERS.parse(2**32 - 1) == 2**32 - 1
    assert p.BLOCK_NUMBERS.parse("0xffffffff") == 2**32 - 1 and p.BLOCK_NUMBERS.parse("4294967295") == 2**32 - 1
    assert p.BLOCK_NUMBERS.parse("0x10") == 16 and p.BLOCK_NUMBERS.parse("10") == 10 and p.BLOCK_NUMBERS.parse("0") == 0
    assert p.BLOCK_NUMBERS.parse("0xA") == 10 and p.BLOCK_NUMBERS.parse("0x0") == 0
    assert reason(p.BLOCK_NUMBERS, 2**32) == f"{NUMBER_RULE}, got integer 4294967296"
    assert reason(p.BLOCK_NUMBERS, "0x100000000") == f"{NUMBER_RULE}, got string '0x100000000'"
    assert reason(p.BLOCK_NUMBERS, "0X10") == f"{NUMBER_RULE}, got string '0X10'"
    assert reason(p.BLOCK_NUMBERS, -1) == f"{NUMBER_RULE}, got integer -1"
    assert reason(p.BLOCK_NUMBERS, None) == (
        "must be a block number or an array of at most 1024 block numbers, got null"
    )
    assert p.BLOCK_NUMBERS.parse([7] * 1024) == [7] * 1024 and p.BLOCK_NUMBERS.parse([]) == []
    assert reason(p.BLOCK_NUMBERS, [1, "x"]) == f"item 1 {NUMBER_RULE}, got string 'x'"


def test_rows_are_bounded_at_both_edges_with_exact_reasons() -> None:
    assert p.PREDICT_ROWS.parse([[1.5]]).tolist() == [[1.5]]
    assert p.PREDICT_ROWS.parse([[0.0]] * 1024).shape == (1024, 1)
    assert p.PREDICT_ROWS.parse([[0.0] * 4096]).shape == (1, 4096)
    assert p.PREDICT_ROWS.parse([[0.0] * 4096] * 64).shape == (64, 4096)  # 2^18 numbers exactly
    assert reason(p.PREDICT_ROWS, [[0.0]] * 1025) == f"{ROWS_RULE}, got array of 1025 items"
    assert reason(p.PREDICT_ROWS, []) == f"{ROWS_RULE}, got array of 0 items"
    assert reason(p.PREDICT_ROWS, 5) == f"{ROWS_RULE}, got integer 5"
    assert reason(p.PREDICT_ROWS, [5]) == f"{ROWS_RULE}: row 0 is not an array of 1..4096 numbers"
    assert reason(p.PREDICT_ROWS, [[]]) == f"{ROWS_RULE}: row 0 is not an array of 1..4096 numbers"
    assert reason(p.PREDICT_ROWS, [[0.0] * 4097]) == f"{ROWS_RULE}: row 0 is not an array of 1..4096 numbers"
    assert reason(p.PREDICT_ROWS, [[0.0] * 4096] * 64 + [[0.0] * 4096]) == (
        "must hold at most 262144 numbers in all, got 65 rows of 4096"
    )
    assert reason(p.PREDICT_ROWS, [[0, 0], 5]) == f"{ROWS_RULE}: row 1 is not an array of 2 numbers"
    assert reason(p.PREDICT_ROWS, [[0, 0], [0, 0, 0]]) == f"{ROWS_RULE}: row 1 is not an array of 2 numbers"


def test_row_entries_are_float32_numbers() -> None:
    """Integers strictly between -2^128 and 2^128 reach float32 (and may still round to
    infinity there); floats all reach it; anything else is refused by its type."""
    edge = 2**128
    assert reason(p.PREDICT_ROWS, [[0.0, -edge]]) == f"{ROWS_RULE}: inputs[0][1] is integer {-edge}, not a float32 number"
    assert reason(p.PREDICT_ROWS, [[edge]]) == f"{ROWS_RULE}: inputs[0][0] is integer {edge}, not a float32 number"
    assert reason(p.PREDICT_ROWS, [[0.0, 1 - edge]]) == f"{ROWS_RULE}: inputs[0][1] is outside float32's finite range"
    assert reason(p.PREDICT_ROWS, [[1, "1"]]) == f"{ROWS_RULE}: inputs[0][1] is string '1', not a float32 number"
    assert reason(p.PREDICT_ROWS, [[1], [True]]) == f"{ROWS_RULE}: inputs[1][0] is boolean, not a float32 number"
    assert reason(p.PREDICT_ROWS, [[1, None]]) == f"{ROWS_RULE}: inputs[0][1] is null, not a float32 number"
    assert p.PREDICT_ROWS.parse([[-(2**127), 2**127, 3]]).tolist() == [[-(2.0**127), 2.0**127, 3.0]]
    rows = p.PREDICT_ROWS.parse([[1e-46, -0.0]])
    assert rows.dtype == np.float32 and rows.tolist() == [[0.0, -0.0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow to infinity is expected, not warned of
        assert reason(p.PREDICT_ROWS, [[0.0, 1.0, 1e39]]) == f"{ROWS_RULE}: inputs[0][2] is outside float32's finite range"
        assert reason(p.PREDICT_ROWS, [[0.0, float("nan")]]) == f"{ROWS_RULE}: inputs[0][1] is outside float32's finite range"


def test_a_subscription_without_parameters_takes_an_empty_array_or_object() -> None:
    p.check_no_params([])
    p.check_no_params({})
    for given, count in (([1], 1), ([1, 2], 2), ({"a": 1, "b": 2}, 2), (5, 1), (None, 1), ("ab", 1), (0, 1)):
        with pytest.raises(InvalidParams) as info:
            p.check_no_params(given)
        assert info.value.message == f"Invalid params: expected at most 0 (none), got {count}", given

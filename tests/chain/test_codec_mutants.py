"""Mutation testing of chain/codec.py: the canonical form of every hashed or signed object.

Run by name (``mutmut run "chain.codec.*"``; the module is in ``[tool.mutmut] only_mutate``).
Before these tests 8 of the 51 mutants lived: a union's name could become ``None`` in a
refusal, the non-canonical refusal could lose its type's name, and the building of a type's
decoder was never run under a mutant (mutmut's workers inherit a decoder cache that the suite
filled before the mutant was chosen). Now 51/51. Each test here asserts the exact message or
the exact object, not merely that CodecError is raised.

The modules that decode on top of this one have their own files: chain/block.py in
tests/chain/test_block_mutants.py, node/network/messages.py in
tests/node/test_messages_mutants.py, rpc/params.py in tests/rpc/test_params_mutants.py.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import calls, codec
from chain.block import Body
from chain.calls import Call, Remark, Transfer
from chain.codec import (
    CODEC_VERSION,
    decode,
    decode_versioned,
    encode,
    encode_each,
    encode_versioned,
    encode_versioned_each,
)
from chain.errors import CodecError
from chain.extrinsic import IMMORTAL, Extrinsic
from chain.header import compute_largest_header
from node.network.messages import TranscriptRequest, UnreadBlock

BOB = bytes(range(32))


def _reason(data: bytes, typ: object, *, versioned: bool = False) -> str:
    with pytest.raises(CodecError) as info:
        (decode_versioned if versioned else decode)(data, typ)  # type: ignore[arg-type]
    return str(info.value)


def _msgspec_reason(data: bytes, typ: object) -> str:
    """What msgspec itself says of ``data``: the codec's message is this, prefixed."""
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as info:
        msgspec.msgpack.decode(data, type=typ)
    return str(info.value)


def test_canonical_bytes_are_pinned() -> None:
    """The exact bytes: a fixarray, the tag as a positive fixint, a ``bin 8``, the shortest ints.

    Remark's tag is 0 (pallet 0, call 0), Transfer's 256 (pallet 1, call 0), a ``uint16``
    (0xcd 01 00); a transfer of 5 carries 5 as a positive fixint."""
    assert encode(Remark(b"hi")) == bytes.fromhex("9200c4026869")
    assert encode(Transfer(BOB, 5)) == bytes.fromhex("93cd0100c420") + BOB + b"\x05"
    assert encode_versioned(Remark(b"hi")) == bytes((CODEC_VERSION,)) + bytes.fromhex("9200c4026869")
    assert CODEC_VERSION == 1
    assert encode_each([Remark(b"hi"), Remark(b"")]) == [bytes.fromhex("9200c4026869"), bytes.fromhex("9200c400")]
    assert encode_versioned_each([Remark(b"")]) == [bytes.fromhex("019200c400")]
    assert encode_each([]) == [] and encode_versioned_each(()) == []


def test_each_refusal_names_the_type_and_the_exact_reason() -> None:
    """A value out of bounds, malformed bytes and a non-canonical form each say which type was
    being decoded and why, in msgspec's own words after the type's name, and the place msgspec
    names by its index by the field's name too (an outside tester's D3, round 15)."""
    wrong = msgspec.msgpack.encode([0, 7])  # a Remark whose data is an int
    assert _reason(wrong, Remark) == f"Remark: {_msgspec_reason(wrong, Remark)} (data)"
    assert _reason(wrong, Remark) == "Remark: Expected `bytes`, got `int` - at `$[1]` (data)"
    truncated = encode(Remark(b"hi"))[:-1]
    assert _reason(truncated, Remark) == f"Remark: malformed bytes: {_msgspec_reason(truncated, Remark)}"
    assert _reason(b"", Remark) == "Remark: malformed bytes: Input data was truncated"
    padded = bytes.fromhex("9200c500026869")  # the 2-byte data as a ``bin 16``
    assert decode(bytes.fromhex("9200c4026869"), Remark) == Remark(b"hi")
    assert _reason(padded, Remark) == "Remark: bytes are not in canonical form"


def test_a_place_is_named_through_unions_lists_tuples_and_tags() -> None:
    """msgspec names places by array index (``$[5][2]``); the fields' names follow: through a
    tagged union by the tag the bytes carry, a list's index, a fixed tuple's, and a tag."""
    xt = Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, Transfer(BOB, 2**63))
    assert _reason(encode(xt), Extrinsic).endswith(" - at `$[5][2]` (call.value)")
    assert _reason(encode(Body((xt,))), Body).endswith(" - at `$[0][0][5][2]` (extrinsics[0].call.value)")
    assert _reason(msgspec.msgpack.encode([9, b""]), Remark) == "Remark: Invalid value 9 - at `$[0]` (its tag)"
    wanted = msgspec.msgpack.encode([10, 1, BOB, 0, [[0, 1]]])  # a TranscriptRequest's (index, with weights) pair
    assert _reason(wanted, TranscriptRequest).endswith(" - at `$[4][0][1]` (wanted[0][1])")
    assert _reason(msgspec.msgpack.encode([0, 1, 2, 3, 4, 5]), Extrinsic).endswith(" - at `$[0]` (signer)")


def _elements(value: Any) -> int:
    """How many MessagePack elements a value decoded without a type was read from (a bin or a
    string is one, an array one and its items, a map one and its keys and values)."""
    if isinstance(value, list):
        return 1 + sum(map(_elements, value))
    if isinstance(value, dict):
        return 1 + sum(_elements(k) + _elements(v) for k, v in value.items())
    return 1


def _commit(losses: int) -> Extrinsic:
    update = calls.CommitUpdate(0, bytes(32), 1, 1, b"", bytes(32), (7,) * losses, (), ())
    return Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, update)


def test_a_union_in_refused_bytes_is_named_by_the_tag_read_off_them_within_a_budget() -> None:
    """A union's member is picked by the tag the refused bytes carry there, read by types and
    lengths, not by decoding the whole input again without a type (a 16 MiB message refused
    at its first field took 170 ms and 130 MB more that way: an outside tester's AE4). The
    elements read to reach a union's tag count against MAX_NAMING_STEPS at each array on the
    way (bytes did, and 64 KiB of one-byte integers took 6 ms: AF1); past it the names stop
    at the union it could not reach. How long a bin or a string is does not matter."""
    bad = Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, Transfer(BOB, 2**63))
    # To the union at $[0][1][5], the extrinsics' array skips the first extrinsic, read whole.
    fixed = _elements(msgspec.msgpack.decode(encode(_commit(0))))
    n = codec.MAX_NAMING_STEPS - fixed
    assert _elements(msgspec.msgpack.decode(encode(_commit(n)))) == codec.MAX_NAMING_STEPS
    assert _reason(encode(Body((_commit(n), bad))), Body).endswith(" - at `$[0][1][5][2]` (extrinsics[1].call.value)")
    assert _reason(encode(Body((_commit(n + 1), bad))), Body).endswith(" - at `$[0][1][5][2]` (extrinsics[1].call)")
    too_many = msgspec.msgpack.encode([calls.AppendRows.__struct_config__.tag, 0, 0, bytes(2 * 1024 * 1024)])
    assert _reason(too_many, Call).endswith(" - at `$[3]` (rows)")  # 2 MiB refused, its tag read off its first bytes
    rows = Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, calls.AppendRows(0, 0, bytes(1024 * 1024)))  # the most rows a call holds
    assert _reason(encode(Body((rows, bad))), Body).endswith(" - at `$[0][1][5][2]` (extrinsics[1].call.value)")


def test_a_union_is_reached_through_arrays_of_each_width() -> None:
    """The extrinsics' array as a fixarray, an array 16 (17 items) and an array 32 (not the
    canonical form, which msgspec reads before the check): the tag under each is found."""
    bad = Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, Transfer(BOB, 2**63))
    ok = Extrinsic(BOB, bytes(64), 0, 0, IMMORTAL, Remark(b""))
    assert _reason(encode(Body((ok, bad))), Body).endswith(" - at `$[0][1][5][2]` (extrinsics[1].call.value)")
    wide = encode(Body((ok,) * 16 + (bad,)))
    assert wide[1] == 0xDC  # (after the body's array byte)
    assert _reason(wide, Body).endswith(" - at `$[0][16][5][2]` (extrinsics[16].call.value)")
    fix = encode(Body((ok, bad)))
    assert fix[1] == 0x92
    widest = fix[:1] + b"\xdd\x00\x00\x00\x02" + fix[2:]
    assert _reason(widest, Body).endswith(" - at `$[0][1][5][2]` (extrinsics[1].call.value)")


def test_a_place_with_no_union_below_it_is_named_without_reading_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Field names come from the type: the bytes are read only for a union's tag. A gossiped
    CommitUpdate refused at its last field, after 65,535 one-byte losses, was walked element by
    element to name a place no union lies below (an outside tester's AF1, retest36: 6 ms a
    refusal, 80% of a core from rotated identities); it reads the call's tag alone."""
    wrong = msgspec.msgpack.decode(encode(_commit(0xFFFF)))
    wrong[5][8] = "not a path"  # a tuple of hashes
    data = msgspec.msgpack.encode(wrong)
    reads: list[int] = []
    real = codec.compute_element_end
    monkeypatch.setattr(codec, "compute_element_end", lambda *a, **k: reads.append(k.get("count", 1)) or real(*a, **k))
    assert _reason(data, Extrinsic).endswith(" - at `$[5][8]` (call.first_path)")
    assert reads == [5, 1]  # to the call (five fields), then the tag itself


def test_nesting_past_the_recursion_limit_is_a_refusal_not_a_recursion_error() -> None:
    """msgspec nests on the C stack: a Raw field's content (a block's body as a requester first
    reads it) or, before names were read off the bytes, an input decoded again to name a
    place, arrays in arrays 5,000 deep, raised RecursionError, which escaped every handler
    uncharged (an outside tester's AE1 and AE4)."""
    deep = b"\x91" * 5000 + b"\xc0"
    header = compute_largest_header()
    unread = b"\x92" + encode(header) + deep  # an UnreadBlock whose body is nested
    assert _reason(unread, UnreadBlock) == "UnreadBlock: malformed bytes: nested deeper than the decoder's recursion limit"
    # Refused by type at its first field, its place named from the type alone (no union):
    # the nesting after it is never read.
    assert _reason(b"\x92\x00" + deep, Remark) == "Remark: Expected `bytes`, got `array` - at `$[1]` (data)"


def test_a_union_is_named_by_its_members() -> None:
    """A union (``A | B``) has no ``__name__``: the message names it by ``str`` of the union,
    never ``None``."""
    union = Remark | Transfer
    assert not hasattr(union, "__name__")
    garbage = b"\xc1"  # a byte MessagePack never uses
    assert _reason(garbage, union) == f"{union}: malformed bytes: {_msgspec_reason(garbage, union)}"
    assert _reason(b"\xc1", union).startswith("chain.calls.Remark | chain.calls.Transfer: malformed bytes: ")
    wrong = msgspec.msgpack.encode([255, b""])
    assert _reason(wrong, union) == f"{union}: Invalid value 255 - at `$[0]`"
    padded = bytes.fromhex("9200c500026869")
    assert _reason(padded, union) == f"{union}: bytes are not in canonical form"


def test_versioned_refusals_are_exact() -> None:
    assert _reason(b"", Remark, versioned=True) == "Remark: empty input"
    raw = encode_versioned(Remark(b""))
    assert _reason(b"\x07" + raw[1:], Remark, versioned=True) == "Remark: unknown codec version 7 (expected 1)"
    # The version byte alone is the version, whatever follows it (here a byte equal to it).
    assert _reason(b"\x00\x01", Remark, versioned=True) == "Remark: unknown codec version 0 (expected 1)"
    assert _reason(b"\x01", Remark, versioned=True) == "Remark: malformed bytes: Input data was truncated"
    union = Remark | Transfer
    assert _reason(b"", union, versioned=True) == f"{union}: empty input"
    assert _reason(b"\x02", union, versioned=True) == f"{union}: unknown codec version 2 (expected 1)"
    # What follows the version byte is decoded whole, from its first byte.
    assert decode_versioned(raw, Remark) == Remark(b"")
    assert decode_versioned(bytearray(raw), Remark) == Remark(b"")


def test_a_type_decoded_the_first_time_gets_a_decoder_of_that_type() -> None:
    """A class made here has never been decoded (mutmut's workers inherit a cache filled by
    the test run that mapped tests to functions, so a type the suite already decoded would
    never build its decoder under a mutant)."""

    class Fresh(codec.Wire, frozen=True):
        x: codec.U8

    assert Fresh not in codec._decoders
    assert decode(b"\x91\x05", Fresh) == Fresh(5)
    assert codec._decoders[Fresh].type is Fresh
    assert _reason(b"\x91\xcd\x01\x00", Fresh) == "Fresh: Expected `int` <= 255 - at `$[0]` (x)"


def test_one_decoder_per_type_is_built_and_kept() -> None:
    """Building a msgspec Decoder costs more than decoding a transfer, so decode keeps one per
    type: the second decode of a type uses the first one's decoder."""
    decode(encode(Remark(b"x")), Remark)
    first = codec._decoders[Remark]
    assert decode(encode(Remark(b"y")), Remark) == Remark(b"y")
    assert codec._decoders[Remark] is first


class _Bounds(codec.Wire, frozen=True):
    hash32: codec.Hash32
    account: codec.AccountId
    signature: codec.Signature
    balance: codec.Balance
    number: codec.BlockNumber
    u8: codec.U8
    u16: codec.U16
    u32: codec.U32
    u64: codec.U64


_LOW = [bytes(32), bytes(32), bytes(64), 0, 0, 0, 0, 0, 0]
_HIGH = [bytes(32), bytes(32), bytes(64), 2**63 - 1, 2**32 - 1, 255, 2**16 - 1, 2**32 - 1, 2**63 - 1]
_OUTSIDE = [bytes(31), bytes(33), bytes(63), 2**63, 2**32, 256, 2**16, 2**32, 2**63]
_OUTSIDE_REASON = [
    "Expected `bytes` of length >= 32",
    "Expected `bytes` of length <= 32",
    "Expected `bytes` of length >= 64",
    "Expected `int` <= 9223372036854775807",
    "Expected `int` <= 4294967295",
    "Expected `int` <= 255",
    "Expected `int` <= 65535",
    "Expected `int` <= 4294967295",
    "Expected `int` <= 9223372036854775807",
]


def test_the_named_types_hold_their_bounds_at_both_edges() -> None:
    """The bounds are declared (``msgspec.Meta``), not computed, so mutmut, which mutates
    function bodies, never moves them: they are pinned here instead, each at its edges."""
    assert decode(msgspec.msgpack.encode(_LOW), _Bounds) == _Bounds(*_LOW)
    assert decode(msgspec.msgpack.encode(_HIGH), _Bounds) == _Bounds(*_HIGH)
    assert codec.MAX_BALANCE == 2**63 - 1
    for i, (outside, why) in enumerate(zip(_OUTSIDE, _OUTSIDE_REASON, strict=True)):
        values = list(_HIGH)
        values[i] = outside
        assert _reason(msgspec.msgpack.encode(values), _Bounds) == f"_Bounds: {why} - at `$[{i}]` ({_Bounds.__struct_fields__[i]})"
    for i in range(3, 9):  # every integer is unsigned
        values = list(_LOW)
        values[i] = -1
        assert _reason(msgspec.msgpack.encode(values), _Bounds) == f"_Bounds: Expected `int` >= 0 - at `$[{i}]` ({_Bounds.__struct_fields__[i]})"


# --- compute_element_end: the end of one MessagePack element, read off its types and lengths

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=300) | st.binary(max_size=70_000),
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=5), inner, max_size=20),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(value=_values, before=st.binary(max_size=3), after=st.binary(max_size=3))
def test_element_end_is_where_the_encoded_element_ends(value: object, before: bytes, after: bytes) -> None:
    """Every format msgspec writes (fix and sized ints, floats, str, bin of each width, arrays
    and maps nested), between arbitrary bytes: the end is the element's, and a limit one byte
    short refuses it."""
    element = msgspec.msgpack.encode(value)
    data = before + element + after
    assert codec.compute_element_end(data, len(before), len(element)) == len(before) + len(element)
    with pytest.raises(CodecError, match=f"the element at byte {len(before)} runs past byte"):
        codec.compute_element_end(data[: len(before) + len(element) - 1] + bytes(5), len(before), len(element) - 1)


def test_element_end_reads_the_formats_msgspec_does_not_write() -> None:
    """ext 8/16/32, fixext 1..16, 16- and 32-bit arrays and maps of few elements, str 8, and
    the last tag of each fix format: each format's head and length as the spec's table gives
    them. (mutmut, 2026-12-01: of 78 mutants of compute_element_end, five live and are
    equivalent: a fix format's bound moved up by one takes the next format's first tag, an
    empty map, array or string or nil, which reads the same as one byte either way; and
    int.from_bytes without "big", its default since Python 3.11.)"""
    cases = [
        b"\xc7\x02\x05ab", b"\xc8\x00\x01\x05a", b"\xc9\x00\x00\x00\x01\x05a", b"\xd4\x05a", b"\xd5\x05ab",
        b"\xd6\x05" + bytes(4), b"\xd7\x05" + bytes(8), b"\xd8\x05" + bytes(16), b"\xdc\x00\x01\x01",
        b"\xdd\x00\x00\x00\x02\x01\x02", b"\xde\x00\x01\x01\x02", b"\xdf\x00\x00\x00\x01\xa1a\xc0", b"\xd9\x01a",
        b"\x81\x01\x92\x03\xc3", b"\xca" + bytes(4), b"\xd0\xff", b"\xe0",
        b"\x7f", b"\xbf" + bytes(31), b"\x8f" + bytes(30), b"\x9f" + bytes(15),  # each fix format's last tag
    ]
    for element in cases:
        assert codec.compute_element_end(element + b"\xff", 0, 100) == len(element), element.hex()


def _sized(tag: int, width: int, length: int, payload: bytes) -> bytes:
    return bytes((tag,)) + length.to_bytes(width, "big") + payload


@pytest.mark.parametrize("tag", range(0xC4, 0xE0))
def test_element_end_reads_each_sized_format_at_a_length_its_width_needs(tag: int) -> None:
    """Each format from 0xc4 on, with a length only its width holds (300 for 16 bits, 70,000
    for 32), its payload of fixints that a head a byte off would misread: the end is the
    element's, msgspec reads the same element, and one byte less is cut. (The hypothesis
    strategy above seldom draws a bin or str past 255 bytes: a review found bin16, bin32, str16,
    str32 and map32 heads one byte off passing every test, R6.)"""
    n = {0: 0, 1: 200, 2: 300, 4: 70_000}
    bodies = {
        0xC4: _sized(0xC4, 1, n[1], bytes(n[1])), 0xC5: _sized(0xC5, 2, n[2], bytes(n[2])), 0xC6: _sized(0xC6, 4, n[4], bytes(n[4])),
        0xC7: _sized(0xC7, 1, n[1], b"\x05" + bytes(n[1])), 0xC8: _sized(0xC8, 2, n[2], b"\x05" + bytes(n[2])),
        0xC9: _sized(0xC9, 4, n[4], b"\x05" + bytes(n[4])),
        0xCA: b"\xca" + bytes(4), 0xCB: b"\xcb" + bytes(8),
        0xCC: b"\xcc\x01", 0xCD: b"\xcd" + bytes(2), 0xCE: b"\xce" + bytes(4), 0xCF: b"\xcf" + bytes(8),
        0xD0: b"\xd0\x01", 0xD1: b"\xd1" + bytes(2), 0xD2: b"\xd2" + bytes(4), 0xD3: b"\xd3" + bytes(8),
        0xD4: b"\xd4\x05" + bytes(1), 0xD5: b"\xd5\x05" + bytes(2), 0xD6: b"\xd6\x05" + bytes(4),
        0xD7: b"\xd7\x05" + bytes(8), 0xD8: b"\xd8\x05" + bytes(16),
        0xD9: _sized(0xD9, 1, n[1], b"a" * n[1]), 0xDA: _sized(0xDA, 2, n[2], b"a" * n[2]), 0xDB: _sized(0xDB, 4, n[4], b"a" * n[4]),
        0xDC: _sized(0xDC, 2, n[2], bytes(n[2])), 0xDD: _sized(0xDD, 4, n[4], bytes(n[4])),
        0xDE: _sized(0xDE, 2, n[2], b"\x01\x00" * n[2]), 0xDF: _sized(0xDF, 4, n[4], b"\x01\x00" * n[4]),
    }
    element = bodies[tag]
    msgspec.msgpack.decode(element)  # (a valid element)
    data = element + b"\x00" * 8
    assert codec.compute_element_end(data, 0, len(data)) == len(element)
    with pytest.raises(CodecError, match="runs past byte"):
        codec.compute_element_end(element[:-1], 0, len(data))


def test_element_end_refuses_0xc1_and_lengths_past_the_limit_whatever_they_claim() -> None:
    with pytest.raises(CodecError, match="byte 2 is 0xc1, which MessagePack never uses"):
        codec.compute_element_end(b"\x92\x01\xc1", 0, 10)
    # An array of 2**32 - 1 elements in 6 bytes: refused at the limit, not counted out.
    with pytest.raises(CodecError, match="the element at byte 0 runs past byte 6 \\(its limit is 1000 bytes\\)"):
        codec.compute_element_end(b"\xdd\xff\xff\xff\xff\x01", 0, 1000)
    with pytest.raises(CodecError, match="the element at byte 1 runs past byte 3 \\(its limit is 2 bytes\\)"):
        codec.compute_element_end(b"\x00\xc4\x05abcdef", 1, 2)  # a bin of 5 claimed, 2 bytes allowed
    with pytest.raises(CodecError, match="the element at byte 0 runs past byte 3"):
        codec.compute_element_end(b"\xcf\x00\x00", 0, 50)  # a uint64's head cut short

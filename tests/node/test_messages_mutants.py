"""Mutation testing of node/network/messages.py: the wire messages between peers.

Run by name (``mutmut run "node.network.messages*"``; the module is in ``[tool.mutmut]
only_mutate``). tests/node/test_network_messages.py has the round trips and the bounds
msgspec checks; this file pins what ``decode_message`` itself decides: the size bounds at
their exact edges, the exact refusal messages, and the order of the checks (a bound is checked
before any work is done to decode).

Before these tests (and the early check) 13 of the 30 mutants lived, among them the
announcement bound moved by one or applied to every message, the message bound moved by one,
and the duplicate-entry check of a transcript request turned around (the transcript tests
are not in the mutation selection: they start nodes). Now 49/50.

Equivalent survivor: ``str(exc).split(": ", 1)[+1]`` for ``[-1]``. chain.codec's message is
always ``"<type>: <reason>"``, so the split with at most one cut has exactly two parts, and the
second is the last.
"""

from __future__ import annotations

import msgspec
import pytest

from chain.block import Block, Body
from chain.extrinsic import MAX_EXTRINSIC_SIZE
from chain.header import Header, compute_largest_header
from node.network import messages
from node.network.errors import MessageError, OversizeMessage
from node.network.messages import (
    MAX_ANNOUNCE_SIZE,
    MAX_BLOCKS_PER_REQUEST,
    MAX_FRAUD_PROOF_SIZE,
    MAX_JUSTIFICATION_SIZE,
    MAX_OPENINGS_PER_REQUEST,
    MAX_REASON,
    MAX_TRANSACTIONS_PER_MESSAGE,
    MAX_VOTE_SIZE,
    MAX_VOTES_PER_MESSAGE,
    BlockAnnounce,
    Disconnect,
    Transactions,
    TranscriptRequest,
    decode_message,
    encode_message,
)

H = b"\x11" * 32


def _announce_of_size(size: int) -> bytes:
    """A BlockAnnounce of exactly ``size`` bytes, near MAX_ANNOUNCE_SIZE: the largest header the
    header's bounds admit (chain.header.compute_largest_header), its seal as many bytes longer
    or shorter (a ``bin 8`` either way, so the message grows byte for byte with it)."""
    largest = compute_largest_header()
    seal = bytes(len(largest.seal) + size - MAX_ANNOUNCE_SIZE)
    data = encode_message(BlockAnnounce(msgspec.structs.replace(largest, seal=seal)))
    assert len(data) == size
    return data


def test_an_oversize_announcement_is_refused_before_it_is_decoded() -> None:
    """A block announcement is at most MAX_ANNOUNCE_SIZE bytes, but the bound was checked after
    the message was decoded: a peer's 16 MiB announcement of 2.8 million empty digest logs took
    0.9 s and 350 MB to decode before it was refused. The bound is now read off the message's
    first two bytes (its array header and its tag), before decoding: bytes that are not even
    MessagePack after those two are refused for their size, not for their form."""
    data = b"\x92\x02" + b"\xc1" * MAX_ANNOUNCE_SIZE
    with pytest.raises(OversizeMessage) as info:
        decode_message(data)
    assert str(info.value) == (
        f"a block announcement of {MAX_ANNOUNCE_SIZE + 2} bytes is over the {MAX_ANNOUNCE_SIZE}-byte bound "
        "(a real header is a few hundred bytes)"
    )


def test_a_message_not_opened_canonically_is_refused_before_it_is_decoded() -> None:
    """Every message's canonical form opens with a fixarray header (at most 15 items) and its
    tag as a positive fixint; any other opening (here an ``array 16`` header that would let an
    announcement's tag sit past the first two bytes) is refused before decoding."""
    for data in (b"\xdc\x00\x02\x02" + b"\xc1" * 100, b"\x92\xcc\x02" + b"\xc1" * 100, b"\x92", b"", b"\x90"):
        with pytest.raises(MessageError) as info:
            decode_message(data)
        assert str(info.value) == (
            "not a protocol message: not in canonical form (a message opens with an array of 1..15 items and "
            "its tag, 0..127)"
        ), data[:4]


def test_every_message_opens_with_a_fixarray_and_a_fixint_tag() -> None:
    """What the early check relies on: each message type has at most 14 fields besides its
    tag, and its tag is below 128."""
    for typ in messages.Message.__args__:
        config = typ.__struct_config__
        assert 1 + len(typ.__struct_fields__) <= 15 and 0 <= config.tag <= 127, typ


def test_the_announcement_bound_is_exact() -> None:
    assert decode_message(_announce_of_size(MAX_ANNOUNCE_SIZE)) == msgspec.msgpack.decode(
        _announce_of_size(MAX_ANNOUNCE_SIZE), type=BlockAnnounce
    )
    with pytest.raises(OversizeMessage, match=f"of {MAX_ANNOUNCE_SIZE + 1} bytes is over the {MAX_ANNOUNCE_SIZE}-byte"):
        decode_message(_announce_of_size(MAX_ANNOUNCE_SIZE + 1))


def test_the_message_bound_is_exact() -> None:
    data = encode_message(TranscriptRequest(1, H, 0, ((0, True),)))
    assert decode_message(data, max_size=len(data)) == TranscriptRequest(1, H, 0, ((0, True),))
    with pytest.raises(OversizeMessage) as info:
        decode_message(data, max_size=len(data) - 1)
    assert str(info.value) == f"message of {len(data)} bytes is over the {len(data) - 1}-byte bound"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # Two bytes that open canonically go on to msgspec, which names what is wrong.
        (b"\x91\x08", "Expected `array` of at least length 2, got 1"),
        (b"\x92\x08", "malformed bytes: Input data was truncated"),
        (b"\x92\x7f\xc0", "Invalid value 127 - at `$[0]`"),
        (b"\x9f\x01" + bytes(14), "Expected `bytes`, got `int` - at `$[2]` (genesis_hash)"),
        (b"\x93\x08\xa0\xa0", "Expected `array` of at most length 1, got 2"),
        # Any other opening is refused before decoding.
        (b"\xa0\x01", "not in canonical form (a message opens with an array of 1..15 items and its tag, 0..127)"),
        (b"\x90\x01", "not in canonical form (a message opens with an array of 1..15 items and its tag, 0..127)"),
        (b"\x92\x80\xc0", "not in canonical form (a message opens with an array of 1..15 items and its tag, 0..127)"),
        (b"\x92\xff\xc0", "not in canonical form (a message opens with an array of 1..15 items and its tag, 0..127)"),
    ],
)
def test_each_refusal_has_its_exact_reason(data: bytes, reason: str) -> None:
    """The reason is msgspec's, without the union's long type name but with the codec's own
    words (``malformed bytes: ``) kept."""
    with pytest.raises(MessageError) as info:
        decode_message(data)
    assert str(info.value) == f"not a protocol message: {reason}"


def test_the_shortest_message_decodes() -> None:
    """A disconnect with no reason is three bytes: array header, tag, empty string."""
    assert encode_message(Disconnect("")) == b"\x92\x08\xa0"
    assert decode_message(b"\x92\x08\xa0") == Disconnect("")


def test_only_an_announcement_has_the_announcement_bound() -> None:
    big = Transactions((bytes(MAX_ANNOUNCE_SIZE),))
    assert decode_message(encode_message(big)) == big


def test_a_transcript_request_names_each_entry_once() -> None:
    once = TranscriptRequest(1, H, 0, ((3, True), (4, False)))
    assert decode_message(encode_message(once)) == once
    twice = encode_message(TranscriptRequest(1, H, 0, ((3, True), (3, False))))
    with pytest.raises(MessageError) as info:
        decode_message(twice)
    assert str(info.value) == "not a protocol message: a transcript request names an entry twice"


_OPENING = [0, H, 0, [], None]
_BLOCK = msgspec.msgpack.decode(msgspec.msgpack.encode(Block(Header(H, 7, H, H, 9, H), Body())))


@pytest.mark.parametrize(
    ("inside", "outside", "why"),
    [
        ([3, [b""] * MAX_TRANSACTIONS_PER_MESSAGE], [3, [b""] * (MAX_TRANSACTIONS_PER_MESSAGE + 1)], "`array` of length <= 256 - at `$[1]` (extrinsics)"),
        ([3, [bytes(MAX_EXTRINSIC_SIZE)]], [3, [bytes(MAX_EXTRINSIC_SIZE + 1)]], "`bytes` of length <= 2097152 - at `$[1][0]` (extrinsics[0])"),
        ([4, 1, 2**32 - 1, MAX_BLOCKS_PER_REQUEST, 1], [4, 1, 2**32, 1, 0], "`int` <= 4294967295 - at `$[2]` (start)"),
        ([4, 1, H, 1, 0], [4, 1, H, MAX_BLOCKS_PER_REQUEST + 1, 0], "`int` <= 64 - at `$[3]` (count)"),
        ([4, 2**63 - 1, H, 1, 0], [4, 1, H, 1, -1], "`int` >= 0 - at `$[4]` (direction)"),
        ([5, 1, [[_BLOCK, None]] * MAX_BLOCKS_PER_REQUEST], [5, 1, [[_BLOCK, None]] * (MAX_BLOCKS_PER_REQUEST + 1)], "`array` of length <= 64 - at `$[2]` (blocks)"),
        ([5, 1, [[_BLOCK, bytes(MAX_JUSTIFICATION_SIZE)]]], [5, 1, [[_BLOCK, bytes(MAX_JUSTIFICATION_SIZE + 1)]]], "`bytes` of length <= 1048576 - at `$[2][0][1]` (blocks[0].justification)"),
        ([12, [bytes(MAX_VOTE_SIZE)]], [12, [bytes(MAX_VOTE_SIZE + 1)]], "`bytes` of length <= 256 - at `$[1][0]` (payloads[0])"),
        ([12, [b"v"] * MAX_VOTES_PER_MESSAGE], [12, [b"v"] * (MAX_VOTES_PER_MESSAGE + 1)], "`array` of length <= 256 - at `$[1]` (payloads)"),
        ([12, [b"v"]], [12, []], "`array` of length >= 1 - at `$[1]` (payloads)"),
        ([12, [b"v"]], [12, [b""]], "`bytes` of length >= 1 - at `$[1][0]` (payloads[0])"),
        ([7, bytes(MAX_JUSTIFICATION_SIZE)], [7, bytes(MAX_JUSTIFICATION_SIZE + 1)], "`bytes` of length <= 1048576 - at `$[1]` (payload)"),
        ([7, b"j"], [7, b""], "`bytes` of length >= 1 - at `$[1]` (payload)"),
        ([8, "é" * MAX_REASON], [8, "x" * (MAX_REASON + 1)], "`str` of length <= 256 - at `$[1]` (reason)"),
        ([9, bytes(MAX_FRAUD_PROOF_SIZE)], [9, bytes(MAX_FRAUD_PROOF_SIZE + 1)], "`bytes` of length <= 8388608 - at `$[1]` (proof)"),
        ([10, 1, H, 2**32 - 1, [[i, True] for i in range(MAX_OPENINGS_PER_REQUEST)]], [10, 1, H, 0, [[i, True] for i in range(MAX_OPENINGS_PER_REQUEST + 1)]], "`array` of length <= 64 - at `$[4]` (wanted)"),
        ([10, 1, H, 0, [[2**32 - 1, False]]], [10, 1, H, 0, [[0, 1]]], "`bool`, got `int` - at `$[4][0][1]` (wanted[0][1])"),
        ([11, 1, [_OPENING] * MAX_OPENINGS_PER_REQUEST], [11, 1, [_OPENING] * (MAX_OPENINGS_PER_REQUEST + 1)], "`array` of length <= 64 - at `$[2]` (openings)"),
        ([1, 2**16 - 1, H, 255, 2**32 - 1, H, 0, H], [1, 1, H, 256, 0, H, 0, H], "`int` <= 255 - at `$[3]` (roles)"),
    ],
    ids=lambda v: str(v[0]) if isinstance(v, list) else None,
)
def test_each_declared_bound_holds_at_both_edges(inside: list, outside: list, why: str) -> None:
    """The messages' bounds are declared (``msgspec.Meta``), not computed, so mutmut never
    moves them: each is pinned here at its edge, the largest value inside decoding and the
    first one outside refused for that bound."""
    assert encode_message(decode_message(msgspec.msgpack.encode(inside))) == msgspec.msgpack.encode(inside)
    with pytest.raises(MessageError) as info:
        decode_message(msgspec.msgpack.encode(outside))
    assert str(info.value) == f"not a protocol message: Expected {why}"


def test_a_body_whose_extrinsic_nests_past_the_recursion_limit_has_no_root() -> None:
    """A body read as its extrinsics' bytes (msgspec.Raw each) parses each to find its end:
    nested 5,000 deep, msgspec raised RecursionError, which escaped the sync (an outside
    tester's AE1, retest35, found it in the fraud-proof head, read the same way): not an array
    of extrinsics, so no root, and the block is refused as any such answer is."""
    header = compute_largest_header()
    nested = messages.UnreadBlock(header, msgspec.Raw(b"\x91\x91" + b"\x91" * 5000 + b"\xc0"))
    assert messages.compute_answered_extrinsics_root(nested) is None
    empty = messages.UnreadBlock(header, msgspec.Raw(msgspec.msgpack.encode(Body(()))))
    assert messages.compute_answered_extrinsics_root(empty) is not None

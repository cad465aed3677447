"""The wire protocol: canonical encodings, bounds, the fraud-proof gossip."""

from __future__ import annotations

import msgspec
import pytest

from chain.block import Block, Body
from chain.header import Header
from node.network.errors import MessageError, OversizeMessage
from node.network.messages import (
    FIRST_TAGS,
    MAX_BLOCKS_PER_REQUEST,
    MAX_FIRST_MESSAGE_SIZE,
    MAX_FRAUD_PROOF_SIZE,
    MAX_TRANSACTIONS_PER_MESSAGE,
    MAX_VOTE_SIZE,
    MAX_VOTES_PER_MESSAGE,
    PROTOCOL_VERSION,
    ROLE_AUTHORITY,
    TAG_FRAUD_PROOF,
    BlockAnnounce,
    BlockData,
    BlockRequest,
    BlockResponse,
    Disconnect,
    FinalityVotes,
    FraudProofGossip,
    Justification,
    Status,
    Transactions,
    TranscriptResponse,
    decode_message,
    encode_message,
    read_response,
)

H = b"\x11" * 32
HEADER = Header(H, 7, H, H, 9, b"\x22" * 32)
BLOCK = Block(HEADER, Body())

ALL = [
    Status(PROTOCOL_VERSION, H, ROLE_AUTHORITY, 7, H, 3, H),
    BlockAnnounce(HEADER),
    Transactions((b"\x01\x02", b"")),
    BlockRequest(1, H, 3),
    BlockRequest(2, 5, MAX_BLOCKS_PER_REQUEST, 1),
    BlockResponse(1, (BlockData(BLOCK), BlockData(BLOCK, b"just"))),
    FinalityVotes((b"vote",)),
    Justification(b"justification"),
    Disconnect("bye"),
]


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_tags_are_fixed() -> None:
    assert [encode_message(m)[1] for m in ALL] == [1, 2, 3, 4, 4, 5, 12, 7, 8]


@pytest.mark.parametrize("request_id", [0, 127, 128, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**64 - 1])
def test_a_responses_id_is_read_off_its_envelope_without_decoding_it(request_id: int) -> None:
    """Every width MessagePack gives an unsigned integer (fixint, uint8 to uint64); any other
    message, or an envelope cut short, is left to decode_message (round 15's N2)."""
    assert read_response(encode_message(BlockResponse(request_id, (BlockData(BLOCK),)))) == (5, request_id)
    assert read_response(encode_message(TranscriptResponse(request_id, ()))) == (11, request_id)
    data = encode_message(BlockResponse(request_id, ()))
    if request_id > 127:
        assert read_response(data[:3]) is None  # the id's bytes missing
    assert [read_response(encode_message(m)) for m in ALL if not isinstance(m, BlockResponse)] == [None] * (len(ALL) - 1)
    # Only the canonical envelope, a fixarray of 3 (the retest's R5: garbage whose second byte
    # was a response's tag was charged as an answer to no request, not as garbage).
    assert read_response(b"\x00" + data[1:]) is None and read_response(b"\x94" + data[1:]) is None


def test_the_first_message_bound_holds_the_largest_status_and_disconnect() -> None:
    largest = Status(2**16 - 1, H, 255, 2**32 - 1, H, 2**32 - 1, H)
    assert len(encode_message(largest)) <= MAX_FIRST_MESSAGE_SIZE
    assert len(encode_message(Disconnect("\U0010ffff" * 256))) == MAX_FIRST_MESSAGE_SIZE
    for msg in (largest, Disconnect("bye")):
        assert decode_message(encode_message(msg), MAX_FIRST_MESSAGE_SIZE, FIRST_TAGS) == msg
    with pytest.raises(MessageError, match=r"tag 5, where only tags \[1, 8\] are read"):
        decode_message(encode_message(BlockResponse(1, ())), MAX_FIRST_MESSAGE_SIZE, FIRST_TAGS)


def test_fraud_proof_gossip_is_tag_9_and_size_bounded_before_decoding() -> None:
    msg = FraudProofGossip(b"proof")
    assert encode_message(msg)[1] == TAG_FRAUD_PROOF == 9 and decode_message(encode_message(msg)) == msg
    with pytest.raises(MessageError, match=f"length <= {MAX_FRAUD_PROOF_SIZE}"):
        decode_message(msgspec.msgpack.encode([TAG_FRAUD_PROOF, bytes(MAX_FRAUD_PROOF_SIZE + 1)]))
    with pytest.raises(MessageError, match="length >= 1"):
        decode_message(msgspec.msgpack.encode([TAG_FRAUD_PROOF, b""]))
    with pytest.raises(MessageError, match="not a protocol message: Invalid value 13"):
        decode_message(msgspec.msgpack.encode([13, b"x"]))


def test_votes_travel_in_bounded_batches_under_tag_12_and_tag_6_is_retired() -> None:
    """One vote a message passed an honest relay's frame limit once a round held more than
    about 500 validators a slot-second (an outside tester's AG7): votes go in batches of 1 to
    MAX_VOTES_PER_MESSAGE, each of 1 to MAX_VOTE_SIZE bytes; the single vote of protocol
    version 1 (tag 6) is not a message any more."""
    most = FinalityVotes(tuple(b"vote %d" % i for i in range(MAX_VOTES_PER_MESSAGE)))
    assert encode_message(most)[1] == 12 and decode_message(encode_message(most)) == most
    assert decode_message(encode_message(FinalityVotes((bytes(MAX_VOTE_SIZE),)))) == FinalityVotes((bytes(MAX_VOTE_SIZE),))
    for payloads, reason in (
        ([b"v"] * (MAX_VOTES_PER_MESSAGE + 1), f"length <= {MAX_VOTES_PER_MESSAGE}"),
        ([], "length >= 1"),
        ([b""], "length >= 1"),
        ([bytes(MAX_VOTE_SIZE + 1)], f"length <= {MAX_VOTE_SIZE}"),
    ):
        with pytest.raises(MessageError, match=reason):
            decode_message(msgspec.msgpack.encode([12, payloads]))
    with pytest.raises(MessageError, match="not a protocol message: Invalid value 6"):
        decode_message(msgspec.msgpack.encode([6, b"vote"]))


def test_non_canonical_and_garbage_bytes_are_refused() -> None:
    good = encode_message(BlockRequest(1, 5, 3))
    assert good[-1] == 0
    padded = good[:-1] + b"\xcc\x00"  # the direction as a uint8 instead of a fixint
    with pytest.raises(MessageError, match="not in canonical form"):
        decode_message(padded)
    with pytest.raises(MessageError, match="not a protocol message"):
        decode_message(b"\xc1garbage")
    with pytest.raises(MessageError, match="not a protocol message"):
        decode_message(b"")


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([4, 1, 5, 0], "Expected `int` >= 1"),
        ([4, 1, 5, MAX_BLOCKS_PER_REQUEST + 1], f"<= {MAX_BLOCKS_PER_REQUEST}"),
        ([4, 1, 5, 1, 2], "Expected `int` <= 1"),
        ([4, 1, b"short", 1, 0], "Expected `bytes` of length >= 32"),
        ([3, []], "length >= 1"),
        ([3, [b""] * (MAX_TRANSACTIONS_PER_MESSAGE + 1)], f"length <= {MAX_TRANSACTIONS_PER_MESSAGE}"),
        ([12, [b""]], "length >= 1"),
        ([8, "x" * 300], "length <= 256"),
        ([1, 1, H, 4, 7, H, 3, H, "extra"], "Expected `array` of at most length"),
    ],
)
def test_bounds_are_checked_while_decoding(obj, reason: str) -> None:
    with pytest.raises(MessageError, match=reason.replace("[", r"\[")):
        decode_message(msgspec.msgpack.encode(obj))


def test_size_is_checked_before_decoding() -> None:
    data = encode_message(Transactions((bytes(1000),)))
    with pytest.raises(OversizeMessage, match="over the 100-byte bound"):
        decode_message(data, max_size=100)


def test_a_served_block_is_the_same_bytes_as_the_block_data_of_its_block() -> None:
    """A server sends blocks as their stored bytes (ServedBlock, no decode and no encode); the
    response is, bit for bit, the BlockResponse of the decoded blocks, with and without a
    justification, and is cut at the same budget."""
    from chain.calls import Transfer
    from chain.codec import encode
    from chain.extrinsic import Era, Extrinsic
    from node.network.messages import ServedBlock
    from node.network.service import _encode_response

    xt = Extrinsic(b"\x05" * 32, b"\x06" * 64, 3, 0, Era(), Transfer(b"\x07" * 32, 10**12))
    blocks = [BLOCK, Block(HEADER, Body((xt,) * 3))]
    decoded = [BlockData(blocks[0]), BlockData(blocks[1], b"just")]
    served = [ServedBlock(msgspec.Raw(encode(b)), d.justification) for b, d in zip(blocks, decoded, strict=True)]
    request = BlockRequest(9, 1, 2)
    expected = encode_message(BlockResponse(9, tuple(decoded)))
    assert _encode_response(request, served, 1 << 20) == expected
    assert _encode_response(request, [served[0], decoded[1]], 1 << 20) == expected
    assert decode_message(expected) == BlockResponse(9, tuple(decoded))
    first = len(encode(decoded[0]))
    assert _encode_response(request, served, first) == encode_message(BlockResponse(9, decoded[:1]))
    assert _encode_response(request, served, first - 1) == encode_message(BlockResponse(9, ()))
    assert _encode_response(BlockRequest(9, 1, 1), served, 1 << 20) == encode_message(BlockResponse(9, decoded[:1]))

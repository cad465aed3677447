"""The wire protocol: canonical encodings, bounds, the fraud-proof gossip."""

from __future__ import annotations

import msgspec
import pytest

from chain.block import Block, Body
from chain.header import Header
from node.network.errors import MessageError, OversizeMessage
from node.network.messages import (
    MAX_BLOCKS_PER_REQUEST,
    MAX_FRAUD_PROOF_SIZE,
    MAX_TRANSACTIONS_PER_MESSAGE,
    PROTOCOL_VERSION,
    ROLE_AUTHORITY,
    TAG_FRAUD_PROOF,
    BlockAnnounce,
    BlockData,
    BlockRequest,
    BlockResponse,
    Disconnect,
    FinalityVote,
    FraudProofGossip,
    Justification,
    Status,
    Transactions,
    decode_message,
    encode_message,
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
    FinalityVote(b"vote"),
    Justification(b"justification"),
    Disconnect("bye"),
]


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_tags_are_fixed() -> None:
    assert [encode_message(m)[1] for m in ALL] == [1, 2, 3, 4, 4, 5, 6, 7, 8]


def test_fraud_proof_gossip_is_tag_9_and_size_bounded_before_decoding() -> None:
    msg = FraudProofGossip(b"proof")
    assert encode_message(msg)[1] == TAG_FRAUD_PROOF == 9 and decode_message(encode_message(msg)) == msg
    with pytest.raises(MessageError, match=f"length <= {MAX_FRAUD_PROOF_SIZE}"):
        decode_message(msgspec.msgpack.encode([TAG_FRAUD_PROOF, bytes(MAX_FRAUD_PROOF_SIZE + 1)]))
    with pytest.raises(MessageError, match="length >= 1"):
        decode_message(msgspec.msgpack.encode([TAG_FRAUD_PROOF, b""]))
    with pytest.raises(MessageError, match="not a protocol message: Invalid value 12"):
        decode_message(msgspec.msgpack.encode([12, b"x"]))


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
        ([6, b""], "length >= 1"),
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

"""The wire messages between polchain nodes: one tagged union of frozen msgspec structs.

Each message is a MessagePack array whose first element is its tag, then its fields in
declaration order (chain.codec's canonical form: a message has exactly one encoding and
:func:`decode_message` refuses any other). Headers and blocks are chain's own types, so a block
arrives already in the form ``Blockchain.import_block`` takes.

Tags are part of the protocol: never reuse one. Tag 9 is reserved for the fraud-proof message
of the next issue; until it is defined, a message with that tag is refused with its own error
so a newer peer is told apart from a garbage one.

Bounds (checked by msgspec while decoding, after the size check on the raw bytes):
- a message is at most :data:`MAX_MESSAGE_SIZE` bytes (a block is at most 5 MiB of
  extrinsics, plus its training proofs);
- a block request asks for 1..:data:`MAX_BLOCKS_PER_REQUEST` blocks, and a response carries at
  most as many;
- a Transactions message carries at most :data:`MAX_TRANSACTIONS_PER_MESSAGE` extrinsics of
  at most ``MAX_EXTRINSIC_SIZE`` bytes each;
- votes, justifications and disconnect reasons have their own small bounds.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chain.block import Block
from chain.codec import U8, U16, U64, BlockNumber, Hash32, Wire, decode, encode
from chain.errors import CodecError
from chain.extrinsic import MAX_EXTRINSIC_SIZE
from chain.header import Header
from node.network.errors import MessageError, OversizeMessage

PROTOCOL_VERSION = 1
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_BLOCKS_PER_REQUEST = 64
MAX_TRANSACTIONS_PER_MESSAGE = 256
MAX_VOTE_SIZE = 64 * 1024
MAX_JUSTIFICATION_SIZE = 1024 * 1024
MAX_REASON = 256

# Substrate's Roles bits (sc-network-common): FULL = 1, LIGHT = 2, AUTHORITY = 4.
ROLE_FULL = 1
ROLE_AUTHORITY = 4

ASCENDING = 0
DESCENDING = 1

TAG_FRAUD_PROOF = 9  # reserved for the next issue


class Status(Wire, frozen=True, tag=1):
    """The first message each side sends after the Noise handshake."""

    version: U16
    genesis_hash: Hash32
    roles: U8
    best_number: BlockNumber
    best_hash: Hash32
    finalized_number: BlockNumber
    finalized_hash: Hash32


class BlockAnnounce(Wire, frozen=True, tag=2):
    """A new block's header; the receiver asks for the body with a BlockRequest."""

    header: Header


Extrinsics = Annotated[
    tuple[Annotated[bytes, msgspec.Meta(max_length=MAX_EXTRINSIC_SIZE)], ...],
    msgspec.Meta(min_length=1, max_length=MAX_TRANSACTIONS_PER_MESSAGE),
]


class Transactions(Wire, frozen=True, tag=3):
    """Encoded extrinsics to gossip (the pool decodes and checks them)."""

    extrinsics: Extrinsics


class BlockRequest(Wire, frozen=True, tag=4):
    """Up to ``count`` blocks from ``start`` (a hash or a number), walking up or down."""

    id: U64
    start: Hash32 | BlockNumber
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_BLOCKS_PER_REQUEST)]
    direction: Annotated[int, msgspec.Meta(ge=ASCENDING, le=DESCENDING)] = ASCENDING


class BlockData(Wire, frozen=True):
    """A block and, when it has one, the justification that finalized it."""

    block: Block
    justification: Annotated[bytes, msgspec.Meta(max_length=MAX_JUSTIFICATION_SIZE)] | None = None


class BlockResponse(Wire, frozen=True, tag=5):
    id: U64
    blocks: Annotated[tuple[BlockData, ...], msgspec.Meta(max_length=MAX_BLOCKS_PER_REQUEST)]


class FinalityVote(Wire, frozen=True, tag=6):
    """A validator's finality vote; its shape belongs to consensus, here opaque bytes."""

    payload: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_VOTE_SIZE)]


class Justification(Wire, frozen=True, tag=7):
    """A finality justification (votes of > 2/3 of the validators); opaque here."""

    payload: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_JUSTIFICATION_SIZE)]


class Disconnect(Wire, frozen=True, tag=8):
    """Sent before closing, so the remote learns why (encrypted, unlike a WebSocket close reason)."""

    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


Message = Status | BlockAnnounce | Transactions | BlockRequest | BlockResponse | FinalityVote | Justification | Disconnect


def encode_message(message: Message) -> bytes:
    return encode(message)


def decode_message(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Message:
    """The message in ``data``; OversizeMessage over ``max_size``, MessageError if not canonical."""
    if len(data) > max_size:
        raise OversizeMessage(f"message of {len(data)} bytes is over the {max_size}-byte bound")
    try:
        return decode(data, Message)  # type: ignore[arg-type]
    except CodecError as exc:
        if _peek_tag(data) == TAG_FRAUD_PROOF:
            raise MessageError(f"tag {TAG_FRAUD_PROOF} is reserved for fraud proofs, not yet defined") from None
        detail = str(exc).split(": ", 1)[-1]  # drop the union's long type name
        raise MessageError(f"not a protocol message: {detail}") from None


def _peek_tag(data: bytes) -> int | None:
    """The first element of a MessagePack array if it is a small positive int (tags are)."""
    if not data:
        return None
    head = data[0]
    offset = 1 if 0x90 <= head <= 0x9F else 3 if head == 0xDC else 5 if head == 0xDD else None
    if offset is None or len(data) <= offset or data[offset] > 0x7F:
        return None
    return data[offset]

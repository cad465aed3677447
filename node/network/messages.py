"""The wire messages between polchain nodes: one tagged union of frozen msgspec structs.

Each message is a MessagePack array whose first element is its tag, then its fields in
declaration order (chain.codec's canonical form: a message has exactly one encoding and
:func:`decode_message` refuses any other). Headers and blocks are chain's own types, so a block
arrives already in the form ``Blockchain.import_block`` takes.

Tags are part of the protocol: never reuse one. Tag 9 is the fraud-proof gossip, 10 and 11
the transcript request and response of proof-of-learning (issue 9: a block carries each
training call's transcript root, losses and new weights; the intermediate checkpoints are
fetched on import, with Merkle paths against the root, by every validator: consensus.pol).
Tag 6 was a single finality vote (protocol version 1); votes travel in batches under tag 12
since version 2 (:class:`FinalityVotes`).

Bounds (checked by msgspec while decoding, after the size check on the raw bytes):
- a message is at most :data:`MAX_MESSAGE_SIZE` bytes (a block is at most 5 MiB of
  extrinsics, plus its training proofs);
- a block request asks for 1..:data:`MAX_BLOCKS_PER_REQUEST` blocks, and a response carries at
  most as many;
- a Transactions message carries at most :data:`MAX_TRANSACTIONS_PER_MESSAGE` extrinsics of
  at most ``MAX_EXTRINSIC_SIZE`` bytes each;
- a FinalityVotes message carries at most :data:`MAX_VOTES_PER_MESSAGE` votes of at most
  :data:`MAX_VOTE_SIZE` bytes each; justifications and disconnect reasons have their own
  small bounds;
- a transcript request names 1..:data:`MAX_OPENINGS_PER_REQUEST` entries of one training call
  of one block, no entry twice; a response carries at most as many openings and, when it is
  read, at most :data:`MAX_TRANSCRIPT_RESPONSE_SIZE` bytes (each checkpoint is at most 4 ×
  ``max_model_params`` bytes, 1 MiB by default; a server cuts its answer at that budget and the
  requester asks again for the rest). The Noise transport chunks any message up to
  :data:`MAX_MESSAGE_SIZE`, so the budget fits with room to spare;
- a gossiped fraud proof is at most :data:`MAX_FRAUD_PROOF_SIZE` bytes before it is decoded
  (chain.fraud.decode_fraud_proof checks its fields);
- a block announcement is at most :data:`MAX_ANNOUNCE_SIZE` bytes, the largest header the
  header's bounds admit (an announced header is hashed, checked and kept for a sync).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

from chain.block import MAX_BLOCK_EXTRINSICS, Block, Body, compute_extrinsics_root
from chain.codec import CODEC_VERSION, U8, U16, U32, U64, BlockNumber, Hash32, Wire, decode, encode
from chain.errors import CodecError
from chain.extrinsic import MAX_EXTRINSIC_SIZE
from chain.header import Header, compute_largest_header
from chain.proofs import Opening
from chain.votes import MAX_VOTE_BYTES
from node.network.errors import MessageError, OversizeMessage

PROTOCOL_VERSION = 2  # 2: votes in batches (FinalityVotes, tag 12; tag 6 retired)
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_BLOCKS_PER_REQUEST = 64
MAX_TRANSACTIONS_PER_MESSAGE = 256
# A signed vote's most (chain.votes: fixed-size fields and bounded ints), so a longer one is
# refused with the message that carries it (as garbage: no honest node sends one), before it
# is hashed; a FinalityVotes at its most is then about 65 KiB, two Noise chunks.
MAX_VOTE_SIZE = MAX_VOTE_BYTES
# A round's votes are one a validator (consensus.finality.MAX_VOTES, 1,024, at most): a relay
# gathers those it accepts within a window (node.network.service.VOTE_GOSSIP_WINDOW) into one
# message, up to this many.
MAX_VOTES_PER_MESSAGE = 256
MAX_JUSTIFICATION_SIZE = 1024 * 1024
MAX_REASON = 256
MAX_OPENINGS_PER_REQUEST = 64
# A response of 8 checkpoints of the largest model (4 × 2^18 params = 1 MiB each) and their
# paths; a bigger answer is cut by the server and asked for again by the requester.
MAX_TRANSCRIPT_RESPONSE_SIZE = 8 * 1024 * 1024
# A fraud proof holds a header, the TRAIN extrinsic (<= 2 MiB), audit paths and at most two
# openings, one with a checkpoint (4 bytes a parameter: 1 MiB at the default max_model_params):
# about 3.0 MiB at the default config (chain.fraud.compute_max_fraud_proof_size), and at most
# 3.9 MiB at the largest max_model_params a spec may set (chain.config.MAX_MODEL_PARAMS,
# 500,000; governance cannot change it). The wire allows 8 MiB; the node then checks the proof
# against the bound of its chain's config before decoding it.
MAX_FRAUD_PROOF_SIZE = 8 * 1024 * 1024

# Substrate's Roles bits (sc-network-common): FULL = 1, LIGHT = 2, AUTHORITY = 4.
ROLE_FULL = 1
ROLE_AUTHORITY = 4

ASCENDING = 0
DESCENDING = 1

TAG_FRAUD_PROOF = 9
TAG_VOTES = 12
TAG_STATUS, TAG_BLOCK_RESPONSE, TAG_DISCONNECT, TAG_TRANSCRIPT_RESPONSE = 1, 5, 8, 11


class Status(Wire, frozen=True, tag=TAG_STATUS):
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


class BlockResponse(Wire, frozen=True, tag=TAG_BLOCK_RESPONSE):
    id: U64
    blocks: Annotated[tuple[BlockData, ...], msgspec.Meta(max_length=MAX_BLOCKS_PER_REQUEST)]


class UnreadBlock(Wire, frozen=True):
    """A block as a requester first reads it: the header decoded, the body's bytes not yet."""

    header: Header
    body: msgspec.Raw

    def hash(self) -> bytes:
        return self.header.hash()

    def encoded_size(self) -> int:
        """``len(encode(self))`` without copying the body: a fixarray of 2, the header, the body."""
        return 1 + len(encode(self.header)) + len(self.body)


class UnreadBlockData(Wire, frozen=True):
    block: UnreadBlock
    justification: Annotated[bytes, msgspec.Meta(max_length=MAX_JUSTIFICATION_SIZE)] | None = None


class UnreadBlockResponse(Wire, frozen=True, tag=TAG_BLOCK_RESPONSE):
    """A :class:`BlockResponse` with its bodies still bytes (the same bytes), so that its
    headers are checked (linked, sealed) before any body is decoded: a peer with a fresh
    identity each time answered our requests with a sealed-by-nobody block of 419,424 results
    in 16 MiB, each decoded before the seal was looked at (an outside tester's Q1, round 15).
    Skipping a body's items costs about a tenth of decoding them (:func:`read_block_data`)."""

    id: U64
    blocks: Annotated[tuple[UnreadBlockData, ...], msgspec.Meta(max_length=MAX_BLOCKS_PER_REQUEST)]


class ServedBlock(Wire, frozen=True):
    """A :class:`BlockData` as a server sends it: ``block`` is the block's canonical bytes as
    stored (``Blockchain.get_block_bytes``), written to the wire as they are, so serving a
    block costs no decode and no encode. The same bytes as the BlockData of the decoded block
    (tests/node/test_network_messages.py); a receiver decodes BlockData."""

    block: msgspec.Raw
    justification: bytes | None = None


class ServedOpenings(list[Opening]):
    """The openings a server answers a TranscriptRequest with, and the bytes it read to find
    them: a checkpoint is read whole, weights and all, even when the answer leaves them out,
    and what a peer's answer allowance pays is the larger of the two (node.network.service).
    Charged only what was sent, 64 checkpoints asked without their weights made a node read
    170 MiB/s for 0.17 MiB/s of answers (an outside tester's finding, round 9)."""

    def __init__(self, openings: Iterable[Opening], read_bytes: int) -> None:
        super().__init__(openings)
        self.read_bytes = read_bytes


class ServedResponse(Wire, frozen=True, tag=TAG_BLOCK_RESPONSE):
    """A :class:`BlockResponse` as a server encodes it (the same tag, the same bytes): its
    blocks already encoded, each a BlockData's or a ServedBlock's bytes."""

    id: U64
    blocks: tuple[msgspec.Raw, ...]


class FinalityVotes(Wire, frozen=True, tag=TAG_VOTES):
    """Validators' finality votes; their shape belongs to consensus, here opaque bytes.

    In batches, not one a message: reading a message costs about 110 us however small it is,
    and a node takes at most ``frames_per_second`` (500) a peer, so with one vote a message a
    round's votes of more than about 500 validators a slot-second passed an honest relay's
    limit (an outside tester's AG7, retest37). Each vote in it still takes a token of its
    sender's vote allowance (node.network.service)."""

    payloads: Annotated[
        tuple[Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_VOTE_SIZE)], ...],
        msgspec.Meta(min_length=1, max_length=MAX_VOTES_PER_MESSAGE),
    ]


class Justification(Wire, frozen=True, tag=7):
    """A finality justification (votes of > 2/3 of the validators); opaque here."""

    payload: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_JUSTIFICATION_SIZE)]


class Disconnect(Wire, frozen=True, tag=TAG_DISCONNECT):
    """Sent before closing, so the remote learns why (encrypted, unlike a WebSocket close reason)."""

    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class FraudProofGossip(Wire, frozen=True, tag=TAG_FRAUD_PROOF):
    """An encoded chain.fraud.FraudProof: a block's training does not re-run as committed.

    Opaque bytes here, so a proof is size-checked before it is decoded, and decoded (with its
    specific errors) by chain.fraud, which the runtime's ``pol.report_fraud`` uses too."""

    proof: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_FRAUD_PROOF_SIZE)]


Wanted = Annotated[
    tuple[tuple[U32, bool], ...],
    msgspec.Meta(min_length=1, max_length=MAX_OPENINGS_PER_REQUEST),
]


class TranscriptRequest(Wire, frozen=True, tag=10):
    """Openings of entries of the transcript of one training call of one block.

    ``wanted`` is (entry index, with the checkpoint's weights) pairs: a sampled segment j
    needs entry j with weights and entry j + 1 without (its hash and loss suffice)."""

    id: U64
    block_hash: Hash32
    extrinsic_index: U32
    wanted: Wanted


class TranscriptResponse(Wire, frozen=True, tag=TAG_TRANSCRIPT_RESPONSE):
    """The openings the server has of those asked for, in the order asked, none twice; an
    empty tuple means it has none of them (not found is an answer, not an error)."""

    id: U64
    openings: Annotated[tuple[Opening, ...], msgspec.Meta(max_length=MAX_OPENINGS_PER_REQUEST)]


Message = (
    Status | BlockAnnounce | Transactions | BlockRequest | BlockResponse | FinalityVotes | Justification | Disconnect
    | FraudProofGossip | TranscriptRequest | TranscriptResponse
)


_ANNOUNCE_TAG = BlockAnnounce.__struct_config__.tag


def encode_message(message: Message) -> bytes:
    return encode(message)


# A header an author builds is a few hundred bytes (chain.block.BLOCK_OVERHEAD); the largest
# that decodes at all (chain.header's bounds: 8 digest logs of 256 bytes, a 64-byte seal) is
# about 2.4 KiB, and an announcement carries one header: refused above that before decoding.
MAX_ANNOUNCE_SIZE = len(encode_message(BlockAnnounce(compute_largest_header())))


# The first message after the handshake is a Status (or a Disconnect saying why not): read up
# to the larger of the two at their largest, and by its tag before it is decoded. A peer sent a
# 16 MiB BlockResponse first, decoded in full before it was refused (an outside tester's N1,
# round 15).
FIRST_TAGS: frozenset[int] = frozenset((TAG_STATUS, TAG_DISCONNECT))
MAX_FIRST_MESSAGE_SIZE = max(
    len(encode_message(Status(2**16 - 1, bytes(32), 255, 2**32 - 1, bytes(32), 2**32 - 1, bytes(32)))),
    len(encode_message(Disconnect("\U0010ffff" * MAX_REASON))),  # four UTF-8 bytes a character
)
_RESPONSE_TAGS = frozenset((TAG_BLOCK_RESPONSE, TAG_TRANSCRIPT_RESPONSE))
# MessagePack's unsigned integers after a positive fixint: uint8, uint16, uint32, uint64.
_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def read_response(data: bytes) -> tuple[int, int] | None:
    """(tag, request id) of a block or transcript response, read off its canonical envelope
    (``[tag, id, ...]``) without decoding its body; None for any other message. So an answer
    nobody waits for is dropped unread: a peer replayed 16 MiB answers under a request id that
    had timed out, each decoded in full before it was dropped (an outside tester's N2, round
    15). Any other envelope is left to :func:`decode_message` to refuse: garbage whose second
    byte was a response's tag was charged as an answer to no request, or not at all under an
    expired id (the retest's R5)."""
    if len(data) < 3 or data[0] != 0x93 or data[1] not in _RESPONSE_TAGS:  # [tag, id, items]: a fixarray of 3
        return None
    head = data[2]
    if head <= 0x7F:
        return data[1], head
    width = _UINT_WIDTH.get(head)
    if width is None or len(data) < 3 + width:
        return None
    return data[1], int.from_bytes(data[3 : 3 + width], "big")


def decode_block_response(data: bytes) -> UnreadBlockResponse:
    """The block response in ``data``, its bodies not yet decoded (:class:`UnreadBlockResponse`);
    MessageError if it is not one in canonical form (each body is checked when
    :func:`read_block_data` decodes it). Its size is the transport's bound (noise.py's
    reassembly stops at the message bound) and no type's: an answer is bounded by the one."""
    try:
        return decode(data, UnreadBlockResponse)
    except CodecError as exc:
        raise MessageError(f"not a protocol message: {str(exc).split(': ', 1)[-1]}") from None


class _BodyExtrinsics(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A body's extrinsics each as its bytes (its results skipped unread)."""

    extrinsics: Annotated[tuple[msgspec.Raw, ...], msgspec.Meta(max_length=MAX_BLOCK_EXTRINSICS)]


_body_extrinsics = msgspec.msgpack.Decoder(_BodyExtrinsics)


def compute_answered_extrinsics_root(unread: UnreadBlock) -> bytes | None:
    """The extrinsics root of ``unread``'s body, from each extrinsic's bytes without decoding
    any (chain.block.compute_extrinsics_root over their versioned bytes), or None if the body
    is not an array of extrinsics: whether the body is the one its header commits to costs
    a hash of its bytes, not its decode. A node that was behind decoded, one fresh identity
    after another, real headers with stuffed bodies before their import refused them (an
    outside tester's W1, round 15). Bytes not in canonical form do not hash to the root."""
    try:
        extrinsics = _body_extrinsics.decode(unread.body).extrinsics
    except (msgspec.MsgspecError, RecursionError):  # (RecursionError: a Raw nested past the limit, chain.codec.decode)
        return None
    return compute_extrinsics_root(extrinsics, bytes((CODEC_VERSION,)))


def read_block_data(unread: UnreadBlockData) -> BlockData:
    """``unread`` with its body decoded; MessageError if the body is malformed or not in
    canonical form (then the response as a whole was not a protocol message)."""
    try:
        body = decode(bytes(unread.block.body), Body)
    except CodecError as exc:
        raise MessageError(f"not a protocol message: block #{unread.block.header.number}'s {exc}") from None
    return BlockData(Block(unread.block.header, body), unread.justification)


def decode_message(data: bytes, max_size: int = MAX_MESSAGE_SIZE, tags: frozenset[int] | None = None) -> Message:
    """The message in ``data``; OversizeMessage over ``max_size`` (or over its own type's
    bound), MessageError if not canonical or, given ``tags``, if its tag is not one of them.

    Every message has at most 14 fields besides its tag, and every tag is below 128, so its
    canonical form opens with a fixarray header (0x91..0x9f) and the tag as a positive fixint
    (the MessagePack spec's shortest forms, which msgspec writes): the tag is read off the second
    byte, and a block announcement's bound checked, before any work is done to decode. Any other
    opening is not canonical and is refused at once (decoding it first let a peer's 16 MiB
    announcement of empty digest logs cost 0.9 s and 350 MB before it was refused).
    """
    if len(data) > max_size:
        raise OversizeMessage(f"message of {len(data)} bytes is over the {max_size}-byte bound")
    if len(data) < 2 or not 0x91 <= data[0] <= 0x9F or data[1] > 0x7F:
        raise MessageError(
            "not a protocol message: not in canonical form (a message opens with an array of 1..15 items and its "
            "tag, 0..127)"
        )
    if tags is not None and data[1] not in tags:
        raise MessageError(f"not a protocol message here: tag {data[1]}, where only tags {sorted(tags)} are read")
    if data[1] == _ANNOUNCE_TAG and len(data) > MAX_ANNOUNCE_SIZE:
        raise OversizeMessage(
            f"a block announcement of {len(data)} bytes is over the {MAX_ANNOUNCE_SIZE}-byte bound (a real header "
            "is a few hundred bytes)"
        )
    try:
        msg: Message = decode(data, Message)  # type: ignore[arg-type]
    except CodecError as exc:
        detail = str(exc).split(": ", 1)[-1]  # drop the union's long type name
        raise MessageError(f"not a protocol message: {detail}") from None
    if isinstance(msg, TranscriptRequest) and len({index for index, _ in msg.wanted}) != len(msg.wanted):
        raise MessageError("not a protocol message: a transcript request names an entry twice")
    return msg
